// The tests' one wait: the product's poll() (src/host/poll.ts) on the real host's clock.
import { poll } from "../../src/host/poll.js";
import { realHost } from "../../src/host/real-host.js";

const host = realHost();

/** Ask `attempt` every `everyMs` until it gives a value (returned), or undefined once `timeoutMs` passed. */
export function until<T>(
  timeoutMs: number,
  everyMs: number,
  attempt: () => Promise<T | undefined> | T | undefined,
): Promise<T | undefined> {
  return poll(host, { timeoutMs, everyMs }, async () => attempt());
}

/** Wait until `cond` holds; false when it never did within `timeoutMs`. */
export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  return (await until(timeoutMs, everyMs, async () => ((await cond()) ? true : undefined))) ?? false;
}

/** Wait until `cond` holds; throws "timed out waiting for `what`" when it never did within `timeoutMs`. */
export async function waitUntil(
  cond: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<void> {
  if (!(await waitFor(cond, timeoutMs, everyMs))) throw new Error(`timed out waiting for ${what}`);
}
