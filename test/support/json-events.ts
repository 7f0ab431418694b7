// The one reader of `aplspawn --json` output in the tests, typed by the runner's own events
// (src/runner/report.ts): one JSON object per line; other lines (a CLI's error text) are skipped.
import assert from "node:assert/strict";
import type { RunEvent, SummaryEvent, TaskEvent } from "../../src/runner/report.js";

/** What a CLI run printed. */
export interface Printed {
  stdout: string;
  stderr?: string;
}

/** Every event, in order. */
export function runEvents(r: Printed): RunEvent[] {
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as RunEvent);
}

/** The task events. */
export function taskEvents(r: Printed): TaskEvent[] {
  return runEvents(r).filter((e): e is TaskEvent => e.event === "task");
}

/** Ids of the task events in a given state, in order. */
export function taskIds(r: Printed, state: TaskEvent["state"]): string[] {
  return taskEvents(r)
    .filter((e) => e.state === state)
    .map((e) => e.id);
}

/** The summary (the run's last event); fails the test when there is none. */
export function summary(r: Printed): SummaryEvent {
  const s = runEvents(r).findLast((e): e is SummaryEvent => e.event === "summary");
  assert.ok(s, `no summary in output:\n${r.stdout}\n${r.stderr ?? ""}`);
  return s;
}
