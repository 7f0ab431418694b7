// Task: IPv4 forwarding is on (net.ipv4.ip_forward=1), so containers reach beyond the bridge.
// prepare remembers the value it had; rollback and netdown put that value back.
import { defineTask } from "../../src/runner/task.js";
import { type IptContext, iptablesFor, listRules } from "./iptables.js";

/** The sysctl's file: read directly, it is what the original tool's status check looked at. */
export const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** What the forwarding task needs. */
export interface ForwardingParams {
  lab: string;
  /** This lab's filter chain: FORWARD jumps to other chains show that other labs still forward. */
  chain: string;
}

/** The current value of net.ipv4.ip_forward ("0" or "1"). */
export async function readIpForward(ctx: IptContext): Promise<string> {
  return (await ctx.host.fs.readFile(IP_FORWARD)).trim();
}

/**
 * Other aplspawn labs whose FORWARD jumps are still in place (they need forwarding on). Without
 * iptables there can be none.
 */
async function otherLabs(ctx: IptContext, chain: string): Promise<string[]> {
  let bin: string;
  try {
    bin = await iptablesFor(ctx, undefined);
  } catch {
    return [];
  }
  const labs = new Set<string>();
  for (const rule of await listRules(ctx, bin, "filter", "FORWARD")) {
    const lab = /--comment "?aplspawn:([^"\s]+)/.exec(rule)?.[1];
    const target = /-j (\S+)/.exec(rule)?.[1];
    if (lab && target && target !== chain) labs.add(lab);
  }
  return [...labs];
}

/** Turn forwarding on, remembering the old value. */
export const forwardingTask = defineTask<ForwardingParams, { set: "1" }, { previous: string }>({
  kind: "net.forwarding",
  title: () => "Enabling traffic forwarding system-wide",
  rollbackTitle: () => "Restoring traffic forwarding to its previous setting",
  async check(ctx) {
    return (await readIpForward(ctx)) === "1";
  },
  async prepare(ctx) {
    return { previous: await readIpForward(ctx) };
  },
  async run(ctx) {
    await ctx.host.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"], { signal: ctx.signal });
    return { set: "1" };
  },
  async rollback(ctx, { params: p, intent }) {
    const previous = intent?.previous;
    if (previous === undefined || previous === "1") return;
    const now = await readIpForward(ctx);
    if (now !== "1") return; // changed since by someone else: theirs to keep
    // ip_forward is one switch for the whole network namespace: turning it off under another
    // running lab would cut its containers off. Leave it on and say so.
    const others = await otherLabs(ctx, p.chain);
    if (others.length > 0) {
      ctx.info(
        `net.ipv4.ip_forward left at 1 (it was ${previous} before this lab): lab ${others.join(", ")} still forwards through it`,
      );
      return;
    }
    await ctx.host.exec("sysctl", ["-q", "-w", `net.ipv4.ip_forward=${previous}`], { signal: ctx.signal });
  },
});
