// Task: the lab's bridge exists. Creates it only when missing; a bridge that was there before is
// used as it is and, having no journal entry, is never deleted.

import { z } from "zod";
import { bridgeInfo, containerPorts } from "../../src/net/links.js";
import { defineTask, undoUnlessGone, unmet } from "../../src/runner/task.js";

/** What the bridge tasks (this one and net.bridge.up) need (journaled: rollback works from these alone). */
export const bridgeParamsSchema = z.object({ bridge: z.string() });
export type BridgeParams = z.infer<typeof bridgeParamsSchema>;
const bridgeResultSchema = z.object({ created: z.literal(true) });

/** Create the bridge `network.bridge` if it is missing. */
export const bridgeTask = defineTask({
  kind: "net.bridge",
  journaled: { params: bridgeParamsSchema, result: bridgeResultSchema },
  title: (p) => `Creating bridge ${p.bridge}`,
  rollbackTitle: (p) => `Deleting bridge ${p.bridge}`,
  status: (p) => ({ name: `Checking if bridge ${p.bridge} exists`, target: p.bridge }),
  async check(ctx, p) {
    return (await bridgeInfo(ctx, p.bridge)) !== undefined || unmet(`no bridge ${p.bridge}`);
  },
  async run(ctx, p) {
    await ctx.host.exec("ip", ["link", "add", "name", p.bridge, "type", "bridge"], { signal: ctx.signal });
    return { created: true };
  },
  // A journal entry exists only when check found no bridge just before run, so a bridge of this
  // name now is the one this task made (also after a crash, when result is undefined).
  async rollback(ctx, { params: p }) {
    if (!(await bridgeInfo(ctx, p.bridge))) return;
    const busy = await containerPorts(ctx, p.bridge);
    if (busy.length > 0)
      throw new Error(
        `bridge ${p.bridge} still has container interfaces attached (${busy.join(", ")}); stop the lab's containers first`,
      );
    await undoUnlessGone(
      () => ctx.host.exec("ip", ["link", "del", "dev", p.bridge], { signal: ctx.signal }),
      async () => (await bridgeInfo(ctx, p.bridge)) !== undefined,
    );
  },
});
