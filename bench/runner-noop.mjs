// The runner alone: N no-op tasks (journaled, so each costs an intent and a result write) against
// the recording host. Prints one JSON line: {"tasks":N,"ms":…}.

import { runWorkflow } from "../dist/src/runner/runner.js";
import { defineTask, group, task } from "../dist/src/runner/task.js";
import { recordingHost } from "../dist/test/support/recording-host.js";

const n = Number(process.argv[2] ?? 1000);
const concurrent = process.argv[3] === "concurrent";
const noop = defineTask({
  kind: "bench.noop",
  title: () => "no-op",
  check: async () => false,
  run: async () => ({}),
  rollback: async () => undefined,
});
const tasks = Array.from({ length: n }, (_, i) => task(noop, `noop[${i}]`, { i }));
const steps = concurrent ? [group("all", "all", tasks, 50)] : tasks;
const host = recordingHost();
const t0 = performance.now();
await runWorkflow(
  { name: "bench", steps },
  {
    host,
    lab: "bench",
    labDir: "/bench",
    registry: new Map([[noop.kind, noop]]),
    mode: "json",
    emit: () => undefined,
    command: "bench",
  },
);
console.log(JSON.stringify({ tasks: n, concurrent, ms: Math.round(performance.now() - t0) }));
