// Task: the bridge takes no part in IPv6. The lab is IPv4 only, so the bridge neither accepts
// router advertisements (a container sending one would otherwise give the host a route and an
// address) nor has an IPv6 address (disable_ipv6). Rollback puts back the values found, where
// they are still the ones this task wrote.
import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import { linkInfo } from "../../src/net/links.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the task needs. */
const bridgeIpv6ParamsSchema = z.object({ bridge: z.string() });
export type BridgeIpv6Params = z.infer<typeof bridgeIpv6ParamsSchema>;

/** The settings, and the values the lab wants. */
const WANT = { accept_ra: "0", disable_ipv6: "1" } as const;
type Setting = keyof typeof WANT;
const SETTINGS = Object.keys(WANT) as Setting[];

/** The values found before the task wrote its own. */
const bridgeIpv6IntentSchema = z.object({ accept_ra: z.string(), disable_ipv6: z.string() });
export type BridgeIpv6Intent = z.infer<typeof bridgeIpv6IntentSchema>;

const file = (bridge: string, s: Setting) => `/proc/sys/net/ipv6/conf/${bridge}/${s}`;

async function read(ctx: HostContext, bridge: string): Promise<BridgeIpv6Intent> {
  const out = {} as BridgeIpv6Intent;
  for (const s of SETTINGS) out[s] = (await ctx.host.fs.readFile(file(bridge, s))).trim();
  return out;
}

// sysctl's slash form: a bridge name may hold a dot, which the dotted form takes for a separator.
const write = (ctx: HostContext, bridge: string, s: Setting, v: string) =>
  ctx.host.exec("sysctl", ["-q", "-w", `net/ipv6/conf/${bridge}/${s}=${v}`], { signal: ctx.signal });

/** Keep the bridge out of IPv6. */
export const bridgeIpv6Task = defineTask({
  kind: "net.bridge.ipv6",
  journaled: { params: bridgeIpv6ParamsSchema, intent: bridgeIpv6IntentSchema },
  title: (p) => `Keeping bridge ${p.bridge} out of IPv6 (no router advertisements, no address)`,
  rollbackTitle: (p) => `Restoring the IPv6 settings of bridge ${p.bridge}`,
  status: (p) => ({ name: `Checking if bridge ${p.bridge} takes no part in IPv6`, target: p.bridge }),
  async skip(ctx) {
    return (await ctx.host.fs.exists("/proc/sys/net/ipv6")) ? undefined : "the host has no IPv6";
  },
  async check(ctx, p) {
    if (!(await ctx.host.fs.exists(`/proc/sys/net/ipv6/conf/${p.bridge}`)))
      return unmet(`no link ${p.bridge}`);
    const now = await read(ctx, p.bridge);
    const off = SETTINGS.filter((s) => now[s] !== WANT[s]);
    return off.length === 0 || unmet(off.map((s) => `${s} is ${now[s]}`).join(", "));
  },
  prepare: (ctx, p) => read(ctx, p.bridge),
  async run(ctx, p) {
    for (const s of SETTINGS) await write(ctx, p.bridge, s, WANT[s]);
    return null;
  },
  async rollback(ctx, { params: p, intent }) {
    if (!intent || !(await linkInfo(ctx, p.bridge))) return;
    const now = await read(ctx, p.bridge);
    // Changed by someone else since: theirs now, left as it is.
    for (const s of SETTINGS)
      if (now[s] === WANT[s] && intent[s] !== WANT[s]) await write(ctx, p.bridge, s, intent[s]);
  },
});
