// A process running the synthetic workflow with real signal handling, for signal and crash tests.
// argv: up|down WORLD LABDIR [slowMs]
import { processSignals, runInterrupts, tolerateClosedOutput } from "../../../cli/signals.js";
import { type RunEvent, renderEvent } from "../../../src/runner/report.js";
import { downWorkflow, labWorkflow, run } from "../synthetic.js";

const [mode, world = "", lab = "", slow = "0"] = process.argv.slice(2);
const slowMs = Number(slow);
const wf =
  mode === "down"
    ? downWorkflow
    : labWorkflow(world, {
        perFile: {
          "c1.run": { delayMs: slowMs },
          "c2.run": { delayMs: slowMs },
          "c3.run": { delayMs: slowMs },
        },
      });
const emit = (e: RunEvent) => {
  const line = renderEvent("plain", e);
  if (line) process.stdout.write(`${line}\n`);
};
// The CLI's signal and output handling, as `aplspawn run` has it.
tolerateClosedOutput();
const interrupt = runInterrupts(processSignals, emit, (code) => process.exit(code));
const r = await run(wf, lab, { mode: "plain", emit, interrupt: interrupt.signal });
interrupt.off();
if (r.error) process.stderr.write(`error: ${(r.error as Error).message}\n`);
process.exitCode = r.error ? ((r.error as { exitCode?: number }).exitCode ?? 1) : 0;
