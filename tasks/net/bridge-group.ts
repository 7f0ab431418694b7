// Task: the bridge is in aplspawn's interface group (src/net/links.ts, LAB_BRIDGE_GROUP), so that
// every lab's rules know it for a lab's bridge: another lab's chains never let its traffic in, nor
// their own out to it. Rollback puts back the group found, where it is still the one written.
import { z } from "zod";
import { linkGroup } from "../../src/net/links.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the task needs. */
const bridgeGroupParamsSchema = z.object({ bridge: z.string(), group: z.number().int().nonnegative() });
export type BridgeGroupParams = z.infer<typeof bridgeGroupParamsSchema>;

/** The group found before the task wrote its own. */
const bridgeGroupIntentSchema = z.object({ group: z.number().int().nonnegative() });

const setGroup = (bridge: string, group: number) => ["link", "set", "dev", bridge, "group", String(group)];

/** Put the bridge in the labs' interface group. */
export const bridgeGroupTask = defineTask({
  kind: "net.bridge.group",
  journaled: { params: bridgeGroupParamsSchema, intent: bridgeGroupIntentSchema },
  title: (p) => `Marking bridge ${p.bridge} as a lab's (interface group ${p.group})`,
  rollbackTitle: (p) => `Restoring the interface group of bridge ${p.bridge}`,
  status: (p) => ({
    name: `Checking if bridge ${p.bridge} is in the labs' interface group ${p.group}`,
    target: p.bridge,
  }),
  async check(ctx, p) {
    const g = await linkGroup(ctx, p.bridge);
    return g === p.group || unmet(g === undefined ? `no link ${p.bridge}` : `${p.bridge} is in group ${g}`);
  },
  async prepare(ctx, p) {
    return { group: (await linkGroup(ctx, p.bridge)) ?? 0 };
  },
  async run(ctx, p) {
    await ctx.host.exec("ip", setGroup(p.bridge, p.group), { signal: ctx.signal });
    return null;
  },
  async rollback(ctx, { params: p, intent }) {
    // Gone, or changed by someone else since: nothing of ours to put back.
    if (!intent || intent.group === p.group || (await linkGroup(ctx, p.bridge)) !== p.group) return;
    await ctx.host.exec("ip", setGroup(p.bridge, intent.group), { signal: ctx.signal });
  },
});
