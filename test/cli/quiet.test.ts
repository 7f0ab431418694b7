// -q and --no-color: what a quiet run prints, and that every command takes both.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunEvent, shownWhenQuiet } from "../../src/runner/report.js";
import { runMain } from "../support/main-io.js";

test("-q keeps warnings, failures and the summary of a run, nothing else", () => {
  const events: RunEvent[] = [
    { event: "group", id: "g", title: "Group" },
    { event: "task", id: "a", title: "A", state: "changed" },
    { event: "task", id: "b", title: "B", state: "ok" },
    { event: "info", message: "note" },
    { event: "progress", message: "50%" },
    { event: "warning", message: "careful" },
    { event: "task", id: "c", title: "C", state: "failed", error: "boom" },
    { event: "task", id: "a", title: "A", state: "rolled-back" },
    { event: "task", id: "d", title: "D", state: "rollback-failed", error: "stuck" },
    {
      event: "summary",
      workflow: "up",
      ok: false,
      changed: 1,
      unchanged: 1,
      failed: 1,
      cancelled: 0,
      rolledBack: 1,
      rollbackFailed: 1,
      wouldChange: 0,
      skipped: 0,
      durationMs: 1,
    },
  ];
  assert.deepEqual(
    events.filter(shownWhenQuiet).map((e) => (e.event === "task" ? `${e.id} ${e.state}` : e.event)),
    ["warning", "c failed", "d rollback-failed", "summary"],
  );
});

test("-q and --no-color are global options, shown in every command's help", async () => {
  for (const argv of [["--help"], ["status", "--help"], ["run", "--help"]]) {
    const r = await runMain(argv);
    assert.equal(r.code, 0);
    assert.match(r.out, /-q, --quiet/);
    assert.match(r.out, /--no-color/);
  }
});
