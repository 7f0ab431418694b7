// Rollback acts only on journal entries whose params, intent and result have the shapes their kind
// declares: a journal may be from an older aplspawn or edited by hand.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { TaskFailedError } from "../../src/runner/errors.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import type { AnyTaskDef, UndoRecord } from "../../src/runner/task.js";
import {
  downWorkflow,
  type FileParams,
  fileTask,
  labWorkflow,
  registry,
  run,
  setup,
  taskEvents,
} from "./synthetic.js";

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

test("an entry whose params or result do not fit its kind's shapes is not rolled back: reported, kept", async () => {
  const t = await setup();
  try {
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
  } finally {
    await t.cleanup();
  }
});

test("a kind with a rollback but no journaled shapes is a bug: its entries are reported and kept", async () => {
  const t = await setup();
  try {
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
  } finally {
    await t.cleanup();
  }
});
