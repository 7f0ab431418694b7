// APLSPAWN_DEBUG=loops: one JSON line on stderr for every loop device event (attach, claim, a claim
// found stale, drop, the autoclear hand-over, detach, what image.lower picked), naming the lab and
// the run it belongs to, so the lines of several labs on one host can be merged by time and read
// as one story. A debug channel (like the `debug` package's DEBUG=…): off unless asked for.
import type { HostContext } from "../host/host.js";

/** What a line names besides its event: a task's context has the lab and the run. */
type Ctx = HostContext & { lab?: string; runId?: string };

/** Whether APLSPAWN_DEBUG asks for `topic` ("loops", or "all"; a comma-separated list). */
export function debugOn(topic: string, env: string | undefined = process.env.APLSPAWN_DEBUG): boolean {
  const topics = (env ?? "").split(",").map((t) => t.trim());
  return topics.includes(topic) || topics.includes("all");
}

/** Log one loop device event (when APLSPAWN_DEBUG=loops). */
export function loopDebug(ctx: Ctx, event: string, fields: Record<string, unknown>): void {
  if (!debugOn("loops")) return;
  const line = {
    ts: new Date(ctx.host.now()).toISOString(),
    pid: process.pid,
    ...(ctx.lab ? { lab: ctx.lab } : {}),
    ...(ctx.runId ? { run: ctx.runId } : {}),
    event,
    ...fields,
  };
  process.stderr.write(`aplspawn debug loops: ${JSON.stringify(line)}\n`);
}
