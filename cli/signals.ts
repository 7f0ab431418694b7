// Signals are the CLI's, not the runner's: during a run, the first SIGINT or SIGTERM interrupts it
// (the runner cancels what runs and rolls back this run's changes), a second one exits at once
// (Terraform's way; the journal is consistent and `run down` cleans up).
import type { RunEvent } from "../src/runner/report.js";

/** Subscribe a handler to the interrupting signals; returns the unsubscribe. */
export type SignalSource = (handler: () => void) => () => void;

/** The real process's SIGINT and SIGTERM. */
export const processSignals: SignalSource = (handler) => {
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
};

/** An interrupt signal for one run, fed by `source`; off() stops listening. */
export function runInterrupts(
  source: SignalSource | undefined,
  emit: (e: RunEvent) => void,
  exit: (code: number) => never,
): { signal: AbortSignal; off(): void } {
  const interrupt = new AbortController();
  let signals = 0;
  const off = source?.(() => {
    if (++signals === 1) return interrupt.abort();
    emit({
      event: "warning",
      message: "second interrupt: exiting now; the journal is consistent, `aplspawn run down` cleans up",
    });
    exit(130);
  });
  return { signal: interrupt.signal, off: () => off?.() };
}
