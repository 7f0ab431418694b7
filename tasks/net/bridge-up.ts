// Task: the bridge is administratively up. Rollback brings it down again only if this task
// brought it up (a pre-existing bridge that was already up has no journal entry).

import { z } from "zod";
import { linkInfo } from "../../src/net/links.js";
import { defineTask, undoUnlessGone, unmet } from "../../src/runner/task.js";
import { bridgeParamsSchema } from "./bridge.js";

const bridgeUpResultSchema = z.object({ broughtUp: z.literal(true) });

/** Bring the bridge up. */
export const bridgeUpTask = defineTask({
  kind: "net.bridge.up",
  journaled: { params: bridgeParamsSchema, result: bridgeUpResultSchema },
  title: (p) => `Bringing bridge ${p.bridge} up`,
  rollbackTitle: (p) => `Bringing bridge ${p.bridge} down`,
  status: (p) => ({ name: `Checking if bridge ${p.bridge} is up`, target: p.bridge }),
  async check(ctx, p) {
    const l = await linkInfo(ctx, p.bridge);
    return l?.up === true || unmet(l ? `${p.bridge} is down` : `no link ${p.bridge}`);
  },
  async run(ctx, p) {
    await ctx.host.exec("ip", ["link", "set", "dev", p.bridge, "up"], { signal: ctx.signal });
    return { broughtUp: true };
  },
  async rollback(ctx, { params: p }) {
    if ((await linkInfo(ctx, p.bridge))?.up !== true) return;
    await undoUnlessGone(
      () => ctx.host.exec("ip", ["link", "set", "dev", p.bridge, "down"], { signal: ctx.signal }),
      async () => (await linkInfo(ctx, p.bridge))?.up === true,
    );
  },
});
