// The runner's semantics, each proven on a synthetic workflow over real files.
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { z } from "zod";
import {
  InterruptedError,
  JournalError,
  KnownAfterApply,
  LockedError,
  TaskFailedError,
} from "../../src/errors.js";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { renderEvent, type TaskEvent } from "../../src/runner/report.js";
import { defineGuard, defineTask, listTaskIds, task, undo, unmet } from "../../src/runner/task.js";
import { downWorkflow, labWorkflow, run, taskEvents, withWorld } from "../support/synthetic.js";

const journalOf = async (lab: string) => ({
  entries: (await Journal.open(realHost(), journalPath(lab), "t", false)).entries(),
});

test("a full run creates every resource, journals each, and a second run changes nothing", () =>
  withWorld(async (t) => {
    const r1 = await run(labWorkflow(t.world), t.lab);
    assert.equal(r1.error, undefined);
    assert.equal(r1.summary?.changed, 9);
    assert.deepEqual(await t.files(), [
      "a",
      "b",
      "c1.layer",
      "c1.run",
      "c2.layer",
      "c2.run",
      "c3.layer",
      "c3.run",
      "z",
    ]);
    const j = await journalOf(t.lab);
    assert.equal(j.entries.length, 9);
    assert.ok(j.entries.every((e) => e.state === "done"));
    assert.ok(
      j.entries.every((e) => e.family === "test" && e.kept === undefined),
      "family journaled as data",
    );
    const r2 = await run(labWorkflow(t.world), t.lab);
    assert.equal(r2.summary?.changed, 0);
    assert.equal(r2.summary?.unchanged, 9);
    assert.equal((await journalOf(t.lab)).entries.length, 9, "check-held tasks journal nothing");
  }));

test("each intent is on disk before run starts, and each result before the next task starts", () =>
  withWorld(async (t) => {
    const jp = journalPath(t.lab);
    const all = Object.fromEntries(["a", "b", "z"].map((n) => [n, { journalPath: jp }]));
    const r = await run(labWorkflow(t.world, { perFile: all }), t.lab);
    assert.equal(r.error, undefined, String(r.error));
  }));

test("a failure in one concurrent subtask cancels the others and rolls back this run in reverse order", () =>
  withWorld(async (t) => {
    await writeFile(join(t.world, "b"), "pre-existing");
    const wf = labWorkflow(t.world, {
      perFile: {
        "c2.layer": { delayMs: 50, failRun: true },
        "c1.run": { delayMs: 2000 },
        "c3.run": { delayMs: 2000 },
      },
    });
    const r = await run(wf, t.lab);
    assert.ok(r.error instanceof TaskFailedError);
    assert.equal(r.error.taskId, "file[c2.layer]");
    assert.deepEqual(await t.files(), ["b"], "only the pre-existing resource is left");
    const ev = taskEvents(r.events);
    const undone = ev.filter((e) => e.state === "rolled-back").map((e) => e.id);
    const created = ev.filter((e) => e.state === "changed").map((e) => e.id);
    const started = ev.filter((e) => ["changed", "failed", "cancelled"].includes(e.state)).map((e) => e.id);
    for (const id of created) assert.ok(undone.includes(id), `${id} created and undone`);
    for (const id of undone) assert.ok(started.includes(id), `${id} undone only if this run started it`);
    assert.ok(
      undone.includes("file[c2.layer]"),
      "the failed task's intent is undone too (it may have half-run)",
    );
    assert.equal(undone[undone.length - 1], "file[a]", "the first resource created is undone last");
    assert.ok(
      ev.some((e) => e.state === "cancelled"),
      "running siblings were cancelled",
    );
    assert.equal((await journalOf(t.lab)).entries.length, 0);
  }));

test("a failing rollback step is reported, the rest still run, and its entry stays for `down`", () =>
  withWorld(async (t) => {
    const r = await run(
      labWorkflow(t.world, { perFile: { b: { failRollback: true }, z: { failRun: true } } }),
      t.lab,
    );
    assert.ok(r.error instanceof TaskFailedError);
    assert.equal(r.error.rollbackFailures, 1);
    assert.deepEqual(await t.files(), ["b"]);
    const j = await journalOf(t.lab);
    assert.deepEqual(
      j.entries.map((e) => e.id),
      ["file[b]"],
    );
    const failed = taskEvents(r.events).filter((e) => e.state === "rollback-failed");
    assert.equal(failed.length, 1);
    assert.match(failed[0]?.error ?? "", /rollback of .*b failed/);
  }));

test("--no-rollback keeps everything; running again resumes at the failed task", () =>
  withWorld(async (t) => {
    const r1 = await run(labWorkflow(t.world, { perFile: { "c2.run": { failRun: true } } }), t.lab, {
      noRollback: true,
    });
    assert.ok(r1.error instanceof TaskFailedError);
    assert.ok((await t.files()).includes("c2.layer"));
    const r2 = await run(labWorkflow(t.world), t.lab);
    assert.equal(r2.error, undefined);
    const changed = taskEvents(r2.events)
      .filter((e) => e.state === "changed")
      .map((e) => e.id);
    assert.ok(changed.includes("file[c2.run]") && changed.includes("file[z]"));
    assert.ok(!changed.includes("file[a]") && !changed.includes("file[c2.layer]"));
    const d = await run(downWorkflow, t.lab);
    assert.equal(d.error, undefined);
    assert.deepEqual(await t.files(), [], "down undoes both runs' resources");
  }));

test("an interrupt cancels running work, rolls back exactly once, and reports InterruptedError", () =>
  withWorld(async (t) => {
    const ac = new AbortController();
    const wf = labWorkflow(t.world, {
      perFile: { "c1.run": { delayMs: 5000 }, "c2.run": { delayMs: 5000 }, "c3.run": { delayMs: 5000 } },
    });
    // Interrupt once the three slow tasks are running (their intents are journaled).
    const running = run(wf, t.lab, { interrupt: ac.signal });
    for (;;) {
      const e = await journalOf(t.lab).catch(() => ({ entries: [] as { id: string; state: string }[] }));
      if (e.entries.filter((x) => x.id.endsWith(".run]") && x.state === "running").length === 3) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    ac.abort();
    const r = await running;
    assert.ok(r.error instanceof InterruptedError);
    assert.deepEqual(await t.files(), []);
    const undone = taskEvents(r.events)
      .filter((e) => e.state === "rolled-back")
      .map((e) => e.id);
    assert.equal(undone.length, new Set(undone).size, "each resource undone once");
    // a, b, c1..c3.layer were created; c1..c3.run were started (intent journaled) and are undone too.
    assert.equal(undone.length, 8);
    assert.equal(r.summary, undefined);
  }));

test("APLSPAWN_FAIL_AFTER fails right after the named task, whose resource is then rolled back", () =>
  withWorld(async (t) => {
    const ids = listTaskIds(labWorkflow(t.world).steps);
    assert.deepEqual(ids.slice(0, 3), ["file[a]", "file[b]", "file[c1.layer]"]);
    for (const id of ["file[a]", "file[c3.run]", "file[z]", "file[c*.layer]"]) {
      const r = await run(labWorkflow(t.world), t.lab, { failAfter: id });
      assert.ok(r.error instanceof TaskFailedError, id);
      assert.match(String(r.error.message), /injected failure/);
      assert.deepEqual(await t.files(), [], `nothing left after failing after ${id}`);
    }
  }));

test("only the rollback of a failed run is told the run (to keep what explains it); its notes end the error, once each", () =>
  withWorld(async (t) => {
    const seen: (string | undefined)[] = [];
    let afterRun: () => void = () => {};
    const keeper = defineTask({
      kind: "test.keeper",
      journaled: { params: z.object({ path: z.string() }) },
      title: (p) => `Keeping ${p.path}`,
      async check(ctx, p) {
        return ctx.host.fs.exists(p.path);
      },
      async run(ctx, p) {
        await ctx.host.fs.writeFile(p.path, "x");
        afterRun();
        return null;
      },
      async rollback(ctx, { params }) {
        seen.push(ctx.failedRun?.id);
        ctx.failedRun?.note("kept in /logs/run");
        await ctx.host.fs.rm(params.path);
      },
    });
    const registry = new Map([[keeper.kind, keeper]]);
    const keepers = (...names: string[]) =>
      names.map((n) => task(keeper, `keep[${n}]`, { path: join(t.world, n) }));
    const failing = { name: "up", steps: keepers("k1", "k2") };
    const r = await run(failing, t.lab, { registry, failAfter: "keep[k2]" });
    assert.ok(r.error instanceof TaskFailedError);
    assert.deepEqual(r.error.notes, ["kept in /logs/run"], "one note, though two rollbacks added it");
    assert.equal(seen.length, 2);
    assert.match(seen[0] ?? "", /^\d{4}-\d{2}-\d{2}T[\d:.]+Z-[0-9a-f]{6}$/, "the run's id, its time first");
    assert.equal(seen[0], seen[1]);

    seen.length = 0;
    assert.equal((await run(failing, t.lab, { registry })).error, undefined);
    const r2 = await run(downWorkflow, t.lab, { registry });
    assert.equal(r2.error, undefined);
    assert.deepEqual(seen, [undefined, undefined], "a teardown is no failed run");

    seen.length = 0;
    const ac = new AbortController();
    afterRun = () => ac.abort();
    const r3 = await run(failing, t.lab, { registry, interrupt: ac.signal });
    assert.ok(r3.error instanceof InterruptedError);
    assert.deepEqual(seen, [undefined], "an interrupted run keeps nothing");
  }));

test("--dry-run changes nothing and says what would change", () =>
  withWorld(async (t) => {
    await writeFile(join(t.world, "a"), "x");
    const r = await run(labWorkflow(t.world), t.lab, { dryRun: true });
    assert.equal(r.error, undefined);
    assert.equal(r.summary?.wouldChange, 8);
    assert.equal(r.summary?.unchanged, 1);
    assert.deepEqual(await t.files(), ["a"]);
    const skipped = taskEvents(r.events).find((e) => e.id === "file[b]" && e.state === "would-change");
    assert.ok(
      skipped?.commands?.some((c) => c === `write ${join(t.world, "b")}`),
      JSON.stringify(skipped),
    );
    const { stat } = await import("node:fs/promises");
    await assert.rejects(stat(t.lab), "no lab dir, no journal, no lock");
  }));

test("a second run on a locked lab fails at once naming the holder; a dead holder's lock is taken over", () =>
  withWorld(async (t) => {
    const wf = labWorkflow(t.world, { perFile: { a: { delayMs: 2000 } } });
    const first = run(wf, t.lab);
    // Held once it names its holder: the file is made a moment before the kernel's lock is taken,
    // and on a loaded host a second run looking then could take it first.
    const { readFile } = await import("node:fs/promises");
    while (!(await readFile(join(t.lab, "lock"), "utf8").catch(() => "")).includes(`"pid":${process.pid}`))
      await new Promise((r) => setTimeout(r, 10));
    const second = await run(labWorkflow(t.world), t.lab);
    assert.ok(second.error instanceof LockedError);
    assert.match(second.error.message, new RegExp(`PID ${process.pid}`));
    assert.equal((await first).error, undefined);
    // A lock left by a process that is gone.
    await writeFile(
      join(t.lab, "lock"),
      JSON.stringify({ pid: 999999, start: "1", command: "x", since: "then" }),
    );
    const third = await run(downWorkflow, t.lab);
    assert.equal(third.error, undefined);
    assert.ok(
      third.events.some((e) => e.event === "warning" && /took over the lock of PID 999999/.test(e.message)),
    );
  }));

test("a corrupt journal is reported, never guessed at; a torn last record or a leftover temp file is reported and handled", () =>
  withWorld(async (t) => {
    await run(labWorkflow(t.world), t.lab);
    const jp = journalPath(t.lab);
    const good = await readFile(jp, "utf8");
    const lines = good.trimEnd().split("\n");
    // A damaged record in the middle: nothing is undone on a guess.
    await writeFile(
      jp,
      `${[...lines.slice(0, 3), `${lines[3]?.slice(0, 20)}`, ...lines.slice(4)].join("\n")}\n`,
    );
    const r = await run(downWorkflow, t.lab);
    assert.ok(r.error instanceof JournalError);
    assert.match(r.error.message, /journal\.jsonl is corrupt at line 4/);
    assert.equal((await t.files()).length, 9);
    // A well-formed line that is not a journal record.
    await writeFile(
      jp,
      `${[...lines.slice(0, 2), JSON.stringify({ op: "begin", entry: { id: 3 } }), ...lines.slice(2)].join(
        "\n",
      )}\n`,
    );
    const r2 = await run(downWorkflow, t.lab);
    assert.ok(r2.error instanceof JournalError);
    assert.match(r2.error.message, /corrupt at line 3 \(entry\./);
    // Not a journal at all.
    await writeFile(jp, '{"hello":1}\n');
    assert.ok((await run(downWorkflow, t.lab)).error instanceof JournalError);
    // A last record cut short by a crash (never acknowledged) and a leftover compaction temp file:
    // both reported; the rest of the journal is used.
    await writeFile(jp, `${good}{"op":"remove","se`);
    await writeFile(join(t.lab, ".journal.jsonl.abcd1234.tmp"), good.slice(0, 10));
    const r3 = await run(downWorkflow, t.lab);
    assert.equal(r3.error, undefined, String(r3.error));
    assert.ok(r3.events.some((e) => e.event === "warning" && /cut off by a crash/.test(e.message)));
    assert.ok(
      r3.events.some((e) => e.event === "warning" && /interrupted before it took effect/.test(e.message)),
    );
    assert.deepEqual(await t.files(), []);
    assert.deepEqual(await readdir(t.lab), ["journal.jsonl"]);
  }));

test("the journal compacts itself: many runs leave a file proportional to what exists", () =>
  withWorld(async (t) => {
    for (let i = 0; i < 30; i++) {
      assert.equal((await run(labWorkflow(t.world), t.lab)).error, undefined);
      assert.equal((await run(downWorkflow, t.lab)).error, undefined);
    }
    const size = (await readFile(journalPath(t.lab), "utf8")).split("\n").length;
    assert.ok(size < 600, `journal has ${size} lines after 30 up/down cycles`);
    assert.equal((await journalOf(t.lab)).entries.length, 0);
  }));

test("down undoes every run's resources newest first; a busy one fails the run, stays journaled, and a later down finishes", () =>
  withWorld(async (t) => {
    const busy = join(t.lab, "..", "busy");
    await writeFile(busy, "");
    const r = await run(labWorkflow(t.world, { perFile: { b: { busyWhile: busy } } }), t.lab);
    assert.equal(r.error, undefined);
    const d1 = await run(downWorkflow, t.lab);
    assert.ok(d1.error instanceof TaskFailedError);
    assert.match(String(d1.error.message), /1 of 9 resources could not be undone/);
    assert.deepEqual(await t.files(), ["b"]);
    assert.deepEqual(
      (await journalOf(t.lab)).entries.map((e) => e.id),
      ["file[b]"],
    );
    const undone = taskEvents(d1.events)
      .filter((e) => e.state === "rolled-back")
      .map((e) => e.id);
    assert.equal(undone[0], "file[z]");
    assert.equal(undone[undone.length - 1], "file[a]");
    const { rm } = await import("node:fs/promises");
    await rm(busy);
    const d2 = await run(downWorkflow, t.lab);
    assert.equal(d2.error, undefined);
    assert.deepEqual(await t.files(), []);
    const d3 = await run(downWorkflow, t.lab);
    assert.equal(d3.summary?.changed, 0, "a second down changes nothing");
  }));

test("an undo step with lanes undoes each lane newest first, lanes at the same time", () =>
  withWorld(async (t) => {
    const slow = { rollbackDelayMs: 200 };
    const perFile = {
      "c1.layer": slow,
      "c1.run": slow,
      "c2.layer": slow,
      "c2.run": slow,
      "c3.layer": slow,
      "c3.run": slow,
    };
    assert.equal((await run(labWorkflow(t.world, { perFile }), t.lab)).error, undefined);
    const lane = (e: { id: string }) => /^file\[(c\d)\./.exec(e.id)?.[1];
    const down = {
      name: "down",
      steps: [
        undo("undo.containers", "Containers", (e) => lane(e) !== undefined, { lane, concurrency: 3 }),
        undo("undo.rest", "Rest", () => true),
      ],
    };
    const r = await run(down, t.lab);
    assert.equal(r.error, undefined);
    const undone = taskEvents(r.events)
      .filter((e) => e.state === "rolled-back")
      .map((e) => e.id.replace(/^file\[|\]$/g, ""));
    assert.deepEqual(
      new Set(undone.slice(0, 3)),
      new Set(["c1.run", "c2.run", "c3.run"]),
      `lanes ran together: ${undone}`,
    );
    for (const c of ["c1", "c2", "c3"])
      assert.ok(undone.indexOf(`${c}.run`) < undone.indexOf(`${c}.layer`), "newest first within a lane");
    assert.deepEqual(undone.slice(6), ["z", "b", "a"]);
    assert.deepEqual(await t.files(), []);
  }));

test("a task that does not apply is skipped with its reason: neither checked nor run, counted apart", () =>
  withWorld(async (t) => {
    const calls: string[] = [];
    const offTask = defineTask<{ on: boolean }>({
      kind: "test.off",
      title: () => "Pinging the lab",
      skip: async (_ctx, p) => (p.on ? undefined : "ping is off"),
      async check() {
        calls.push("check");
        return false;
      },
      async run() {
        calls.push("run");
      },
    });
    const r = await run({ name: "off", steps: [task(offTask, "off", { on: false })] }, t.lab);
    assert.equal(r.error, undefined);
    assert.deepEqual(calls, []);
    const e = taskEvents(r.events).find((x) => x.state !== "running");
    assert.equal(e?.state, "skipped");
    assert.equal(e?.reason, "ping is off");
    assert.equal(renderEvent("plain", e as TaskEvent), "‣ [ SKIP ] Pinging the lab: ping is off");
    assert.deepEqual([r.summary?.skipped, r.summary?.changed, r.summary?.unchanged], [1, 0, 0]);
  }));

test("a guard that does not hold fails the run with its check's reason; one that holds shows as ok", () =>
  withWorld(async (t) => {
    let ready = false;
    const calls: string[] = [];
    const guard = defineGuard<{ what: string }>({
      kind: "test.guard",
      title: (p) => `Checking ${p.what}`,
      async check(_ctx, p) {
        calls.push("check");
        return ready || unmet(`${p.what} is not ready`);
      },
    });
    const after = defineTask<null>({
      kind: "test.after",
      title: () => "After the guard",
      async check() {
        return false;
      },
      async run() {
        calls.push("after");
      },
    });
    const wf = { name: "guarded", steps: [task(guard, "g", { what: "the host" }), task(after, "a", null)] };
    const r1 = await run(wf, t.lab);
    assert.ok(r1.error instanceof TaskFailedError);
    assert.equal(r1.error.message, "Task g failed: the host is not ready");
    assert.deepEqual(calls, ["check", "check"], "the step after a failed guard must not run");
    assert.equal((await journalOf(t.lab)).entries.length, 0, "a guard journals nothing");
    ready = true;
    calls.length = 0;
    const r2 = await run(wf, t.lab);
    assert.equal(r2.error, undefined);
    assert.deepEqual(calls, ["check", "after"]);
    assert.equal(taskEvents(r2.events).find((e) => e.id === "g" && e.state !== "running")?.state, "ok");
  }));

test("the host never signals a process group or every process (PID 0 or below)", () => {
  const h = realHost();
  // A SIGTERM to PID 0 would end this test process and its whole group; -1 every process we may signal.
  assert.equal(h.kill(0, "SIGTERM"), false);
  assert.equal(h.kill(-1, "SIGTERM"), false);
  assert.equal(h.kill(-process.pid, "SIGTERM"), false);
  assert.equal(h.kill(process.pid, 0), true, "a real PID is still signalled");
});

test("a dry run's preview: a retried command shown once, what needs an earlier change known after apply, never an error of its own", () =>
  withWorld(async (t) => {
    const echo = (ctx: { host: { exec(c: string, a: string[]): Promise<{ stdout: string }> } }) =>
      ctx.host.exec("echo", ["attach"]);
    const retry = defineTask<{ n: number }>({
      kind: "test.retry",
      title: () => "Attaching",
      check: async () => false,
      async run(ctx) {
        // A retry loop on what the change gives back (losetup --find): a dry host gives nothing back.
        for (let i = 0; i < 6; i++) {
          const r = await echo(ctx);
          if (r.stdout) return;
          if (ctx.dryRun) throw new KnownAfterApply("the device it picks");
        }
        throw new Error("never attached");
      },
    });
    const needs = defineTask<{ n: number }>({
      kind: "test.needs",
      title: () => "Mounting what was attached",
      check: async () => false,
      async run() {
        throw new Error("no such device");
      },
    });
    const r = await run(
      { name: "dry", steps: [task(retry, "retry", { n: 1 }), task(needs, "needs", { n: 1 })] },
      t.lab,
      { dryRun: true },
    );
    assert.equal(r.error, undefined);
    const [a, b] = taskEvents(r.events).filter((e) => e.state !== "running");
    assert.equal(a?.state, "would-change");
    assert.deepEqual(a?.commands, ["echo attach", "(known after apply: the device it picks)"]);
    assert.equal(b?.state, "would-change");
    assert.deepEqual(b?.commands, [
      "(known after apply: it needs what the steps before would make; now: no such device)",
    ]);
    assert.equal(r.summary?.wouldChange, 2);
    assert.equal(
      renderEvent("plain", a as TaskEvent),
      "‣ [ DRY ] Attaching: would change\n      echo attach\n      (known after apply: the device it picks)",
    );
  }));

test("plain output prints a step's progress lines only once it has run two seconds; --json gets them all", () =>
  withWorld(async (t) => {
    const slow = defineTask<{ waitMs: number }>({
      kind: "test.slow",
      title: () => "Downloading",
      check: async () => false,
      async run(ctx, p) {
        ctx.progress("early");
        await new Promise((r) => setTimeout(r, p.waitMs));
        ctx.progress("late");
      },
    });
    const wf = { name: "slow", steps: [task(slow, "slow", { waitMs: 2100 })] };
    const progress = (events: { event: string; message?: string }[]) =>
      events.filter((e) => e.event === "progress").map((e) => e.message);
    const plain = await run(wf, t.lab, { mode: "plain" });
    assert.equal(plain.error, undefined);
    assert.deepEqual(progress(plain.events), ["late"]);
    const json = await run(wf, t.lab, { mode: "json" });
    assert.deepEqual(progress(json.events), ["early", "late"]);
  }));
