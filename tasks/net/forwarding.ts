// Task: IPv4 forwarding is on (net.ipv4.ip_forward=1), so containers reach beyond the bridge.
// ip_forward is one switch for the whole network namespace, shared by every lab in it: the lab
// holds it (tasks/host/held-setting), and the value found before any lab turned it on comes back
// when the last lab's netdown (or rollback) lets go, never under another lab that still runs.
import { netnsOf } from "../../src/host/proc.js";
import { ipt } from "../../src/net/iptables.js";
import { type HeldParams, heldParamsSchema, heldSettingTask } from "../host/held-setting.js";

/** The sysctl's file: read directly, it is what the original tool's status check looked at. */
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** What the forwarding task needs: the lab that holds the setting. */
export type ForwardingParams = HeldParams;

/** Turn forwarding on and hold it (the setting of this network namespace, named by its inode). */
export const forwardingTask = heldSettingTask<ForwardingParams>({
  kind: "net.forwarding",
  params: heldParamsSchema,
  name: "net.ipv4.ip_forward",
  title: () => "Enabling traffic forwarding system-wide",
  rollbackTitle: () => "Restoring traffic forwarding to its previous setting",
  async setting(ctx) {
    const ns = await netnsOf(ctx.host);
    if (ns === undefined)
      throw new Error("cannot read the network namespace of this process (/proc/self/ns/net)");
    return {
      key: `ip_forward-${ns}`,
      read: async () => (await ctx.host.fs.readFile(IP_FORWARD)).trim(),
      write: async (v) => {
        await ctx.host.exec("sysctl", ["-q", "-w", `net.ipv4.ip_forward=${v}`], { signal: ctx.signal });
      },
    };
  },
  status: () => ({ name: `Checking if traffic forwarding is enabled ${IP_FORWARD}`, target: IP_FORWARD }),
  // aplspawn's rules judge only the lab's traffic: with FORWARD's policy ACCEPT, turning forwarding
  // on makes the host route between its other interfaces too. That is the user's to decide: said.
  async noteOnWrite(ctx) {
    const r = await ipt(ctx, "iptables", "filter", ["-S", "FORWARD"], { readOnly: true, allowFail: true });
    return /^-P FORWARD ACCEPT$/m.test(r.stdout)
      ? "ip_forward was off and FORWARD's policy is ACCEPT: the host now also routes between its other interfaces (aplspawn's rules cover the lab's traffic only; set a FORWARD policy of DROP if that is not wanted)"
      : undefined;
  },
  want: (_p, cur) => (cur === "1" ? undefined : "1"),
});
