// Rollback acts only on journal entries whose params, intent and result have the shapes their kind
// declares: a journal may be from an older aplspawn or edited by hand.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { containerSpecs } from "../../config/containers.js";
import { parseConfig } from "../../config/load.js";
import { labDir } from "../../config/paths.js";
import { TaskFailedError } from "../../src/errors.js";
import { realHost } from "../../src/host/real-host.js";
import { containerStates } from "../../src/lab/state.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import type { AnyTaskDef, UndoRecord } from "../../src/runner/task.js";
import { labLook } from "../../workflows/lab-params.js";
import { recordingHost } from "../support/recording-host.js";
import {
  downWorkflow,
  type FileParams,
  fileTask,
  labWorkflow,
  registry,
  run,
  taskEvents,
  withWorld,
} from "../support/synthetic.js";

const entryIds = async (lab: string) =>
  (await Journal.open(realHost(), journalPath(lab), "t", false)).entries().map((e) => e.id);

type Line = {
  op: string;
  seq?: number;
  entry?: { id: string; seq: number; params: unknown };
  result?: unknown;
};

// Edit the journal on disk as a hand (or an older aplspawn) might: each entry's params and result.
async function tamper(
  lab: string,
  edit: Record<string, { params?: (p: Record<string, unknown>) => unknown; result?: unknown }>,
) {
  const jp = journalPath(lab);
  const lines = (await readFile(jp, "utf8")).trimEnd().split("\n");
  const ids = new Map<number, string>();
  const out = lines.map((l, i) => {
    if (i === 0) return l;
    const r = JSON.parse(l) as Line;
    if (r.op === "begin" && r.entry) {
      ids.set(r.entry.seq, r.entry.id);
      const f = edit[r.entry.id]?.params;
      if (f) r.entry.params = f({ ...(r.entry.params as Record<string, unknown>) });
    }
    const e = r.op === "done" && r.seq !== undefined ? edit[ids.get(r.seq) ?? ""] : undefined;
    if (e && "result" in e) r.result = e.result;
    return JSON.stringify(r);
  });
  await writeFile(jp, `${out.join("\n")}\n`);
}

test("an entry whose params or result do not fit its kind's shapes is not rolled back: reported, kept", () =>
  withWorld(async (t) => {
    assert.equal((await run(labWorkflow(t.world), t.lab)).error, undefined);
    await tamper(t.lab, {
      // A wrong type, a missing field, no object at all, and a result of the wrong shape.
      "file[a]": { params: (p) => ({ ...p, path: 42 }) },
      "file[b]": { params: ({ path: _, ...rest }) => rest },
      "file[z]": { params: () => null },
      "file[c1.layer]": { result: { created: 7 } },
    });
    const seen: unknown[] = [];
    const spied: AnyTaskDef = {
      ...fileTask,
      async rollback(ctx, rec: UndoRecord<FileParams, void, { created: string }>) {
        seen.push(rec.params);
        return fileTask.rollback?.(ctx, rec);
      },
    };
    const d = await run(downWorkflow, t.lab, { registry: new Map([...registry, [fileTask.kind, spied]]) });
    assert.ok(d.error instanceof TaskFailedError, String(d.error));
    assert.match(d.error.message, /4 of 9 resources could not be undone/);
    assert.equal(seen.length, 5, "rollback ran only for the entries that fit");
    assert.ok(seen.every((p) => typeof (p as FileParams).path === "string"));
    assert.deepEqual(await t.files(), ["a", "b", "c1.layer", "z"], "nothing of theirs was undone");
    assert.deepEqual((await entryIds(t.lab)).sort(), ["file[a]", "file[b]", "file[c1.layer]", "file[z]"]);
    const failed = new Map(
      taskEvents(d.events)
        .filter((e) => e.state === "rollback-failed")
        .map((e) => [e.id, e] as const),
    );
    assert.deepEqual([...failed.keys()].sort(), ["file[a]", "file[b]", "file[c1.layer]", "file[z]"]);
    const says = (id: string, what: RegExp) => {
      const e = failed.get(id);
      assert.match(e?.error ?? "", what, id);
      assert.match(e?.error ?? "", /stays in the journal/, id);
      assert.match(
        e?.error ?? "",
        new RegExp(`journal entry ${id.replace(/[[\].]/g, "\\$&")} \\(kind test\\.file\\)`),
      );
    };
    says("file[a]", /params\.path: .*expected string, received number/);
    says("file[b]", /params\.path: .*expected string, received undefined/);
    says("file[z]", /params: .*expected object, received null/);
    says("file[c1.layer]", /result\.created: .*expected string, received number/);
    assert.equal(failed.get("file[z]")?.title, "Undoing file[z]", "a title from its own id, not its params");
  }));

test("a kind with a rollback but no journaled shapes is a bug: its entries are reported and kept", () =>
  withWorld(async (t) => {
    assert.equal((await run(labWorkflow(t.world, { containers: 0 }), t.lab)).error, undefined);
    const { journaled: _, ...undeclared } = fileTask;
    const d = await run(downWorkflow, t.lab, {
      registry: new Map([[fileTask.kind, undeclared as AnyTaskDef]]),
    });
    assert.ok(d.error instanceof TaskFailedError);
    const failed = taskEvents(d.events).filter((e) => e.state === "rollback-failed");
    assert.equal(failed.length, 3);
    assert.match(
      failed[0]?.error ?? "",
      /task kind test\.file has a rollback but declares no journaled shapes/,
    );
    assert.deepEqual(await t.files(), ["a", "b", "z"]);
    assert.equal((await entryIds(t.lab)).length, 3);
  }));

test("pids and exec skip a container.nspawn entry that does not fit its shapes, with a warning naming it", async () => {
  const h = recordingHost();
  const c = parseConfig("lab: t\n", "t.yaml");
  const j = await Journal.open(h, journalPath(labDir(c)), c.lab);
  const params = (name: string) => ({
    name,
    merged: `/var/lib/machines/${name}`,
    logFile: `/var/lib/aplspawn/t/containers/${name}/log`,
    bridge: "nspawnd0",
    init: "boot",
    stopTimeoutMs: 30_000,
  });
  // Containers the config does not name (only their entries make them known): one whose entry
  // fits, one whose merged root was edited into a number, one whose PID was journaled as a string.
  const entry = async (name: string, p: unknown, result: unknown) => {
    const seq = await j.begin({
      id: `container.nspawn[${name}]`,
      kind: "container.nspawn",
      scope: name,
      family: "container",
      runId: "r",
      params: p,
      intent: { registered: true, cgroups: [] },
    });
    await j.complete(seq, result);
  };
  const result = { pid: 4242, start: 1, leader: 4243, registered: true };
  await entry("old-1", params("old-1"), result);
  await entry("old-2", { ...params("old-2"), merged: 7 }, result);
  await entry("old-3", params("old-3"), { ...result, pid: "4242" });
  const warnings: string[] = [];
  const states = await containerStates(h, labLook(c), { journaledOnly: true, warn: (m) => warnings.push(m) });
  assert.deepEqual(
    states.map((s) => s.name),
    [...containerSpecs(c).map((s) => s.name), "old-1"],
  );
  assert.equal(warnings.length, 2, warnings.join("\n"));
  assert.match(
    warnings[0] ?? "",
    /journal entry container\.nspawn\[old-2\] .*params\.merged: .*expected string/,
  );
  assert.match(
    warnings[1] ?? "",
    /journal entry container\.nspawn\[old-3\] .*result\.pid: .*expected number/,
  );
});
