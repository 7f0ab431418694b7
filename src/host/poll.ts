// Waiting for something on the host: one loop, on the host's clock, instead of one per task.
import type { Host } from "./host.js";

/** How long to keep asking, and how often. */
export interface PollOptions {
  timeoutMs: number;
  /** Pause between attempts; a function is asked after each attempt (it may depend on what it saw). */
  everyMs: number | (() => number);
  signal?: AbortSignal;
}

/**
 * Ask `attempt` (numbered from 1) until it gives a value other than undefined, and return that; once
 * `timeoutMs` has passed after a failed attempt, return undefined. An attempt that throws ends it.
 */
export async function poll<T>(
  host: Host,
  o: PollOptions,
  attempt: (n: number) => Promise<T | undefined>,
): Promise<T | undefined> {
  const deadline = host.now() + o.timeoutMs;
  for (let n = 1; ; n++) {
    const v = await attempt(n);
    if (v !== undefined) return v;
    if (host.now() >= deadline) return undefined;
    await host.sleep(typeof o.everyMs === "function" ? o.everyMs() : o.everyMs, o.signal);
  }
}
