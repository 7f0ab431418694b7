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
