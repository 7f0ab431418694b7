// Signals are the CLI's, not the runner's: during a run, the first SIGINT, SIGTERM or SIGHUP
// interrupts it (the runner cancels what runs and rolls back this run's changes), a second one exits
// at once (Terraform's way; the journal is consistent and `run down` cleans up). SIGHUP (the
// terminal closed, an ssh session dropped) is one too: by default it killed aplspawn mid-run with
// no rollback, as a SIGKILL would.
import { closeSync } from "node:fs";
import { isatty } from "node:tty";
import type { RunEvent } from "../src/runner/report.js";

/** Subscribe a handler to the interrupting signals; returns the unsubscribe. */
export type SignalSource = (handler: () => void) => () => void;

/** The signals that interrupt a run. */
const INTERRUPTS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** The real process's SIGINT, SIGTERM and SIGHUP. */
export const processSignals: SignalSource = (handler) => {
  for (const s of INTERRUPTS) process.on(s, handler);
  return () => {
    for (const s of INTERRUPTS) process.off(s, handler);
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

/**
 * Let a closed pipe (`aplspawn pids | head -1`: EPIPE) or a terminal that hung up (EIO, after
 * SIGHUP) end the output, not the process: a rollback that SIGHUP started goes on to its end.
 */
export function tolerateClosedOutput(
  streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr],
) {
  // Node restores a terminal's settings as it exits and aborts (SIGABRT, a core dump) when the
  // terminal hung up (tcsetattr: EIO); it skips a descriptor that is closed by then.
  const terminals = [0, 1, 2].filter((fd) => isatty(fd));
  let hungUp = false;
  for (const stream of streams)
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EIO") hungUp = true;
      else if (e.code !== "EPIPE") throw e;
    });
  process.once("exit", () => {
    if (!hungUp) return;
    for (const fd of terminals)
      try {
        closeSync(fd);
      } catch {}
  });
}
