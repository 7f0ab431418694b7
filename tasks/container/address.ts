// The container's address, set from the host side: in the container's network namespace only
// (`nsenter --net=/proc/LEADER/ns/net`), the host's own `ip` brings lo and host0 up, gives host0
// its address and adds the default route. The `ip` process stays in the host's mount and PID
// namespaces (no host binary runs in the container's root or PID namespace: docs/trust-model.md),
// and nothing of the image's network manager is needed: systemd-networkd, NetworkManager, ifupdown
// or none. What keeps a manager from undoing it is written before the start (tasks/container/
// network.ts). Nothing to undo: the namespace, with all of this, goes with the container.
import { KnownAfterApply } from "../../src/errors.js";
import { poll } from "../../src/host/poll.js";
import { childrenOf, procStat } from "../../src/host/proc.js";
import type { RunContext } from "../../src/host/run-scope.js";
import { theNspawn } from "../../src/lab/nspawn-procs.js";
import { defineTask, met, unmet } from "../../src/runner/task.js";

/** Parameters (nothing to undo, nothing journaled to read back). */
export interface AddressParams {
  name: string;
  merged: string;
  /** The container's address with prefix, e.g. 10.10.12.10/26. */
  address: string;
  gateway: string;
  /** host0's MTU (network.mtu); the kernel's when unset. */
  mtu?: number;
}

/** The interface nspawn's --network-bridge gives the container. */
export const HOST0 = "host0";

/** What `ip -batch` is given: host0's address first (it fails in a namespace without host0). */
export const addressBatch = (p: Pick<AddressParams, "address" | "gateway" | "mtu">) =>
  [
    `address replace ${p.address} dev ${HOST0}`,
    ...(p.mtu === undefined ? [] : [`link set ${HOST0} mtu ${p.mtu}`]),
    "link set lo up",
    `link set ${HOST0} up`,
    `route replace default via ${p.gateway} dev ${HOST0}`,
    "",
  ].join("\n");

/** The container's leader (its init) and that process's start time, found through its nspawn. */
async function leaderOf(
  ctx: RunContext,
  p: AddressParams,
): Promise<{ pid: number; start: number } | undefined> {
  const n = await theNspawn(ctx, p.name, p.merged);
  if (!n?.leader) return undefined;
  const st = await procStat(ctx.host, n.leader);
  return st ? { pid: n.leader, start: st.start } : undefined;
}

/**
 * Whether `leader` is still the very process found (same start time, still a child of its nspawn):
 * a PID that ended and was reused by another process is never entered, or trusted afterwards.
 */
async function stillLeader(ctx: RunContext, p: AddressParams, leader: { pid: number; start: number }) {
  const n = await theNspawn(ctx, p.name, p.merged);
  if (!n || !(await childrenOf(ctx.host, n.pid)).includes(leader.pid)) return false;
  return (await procStat(ctx.host, leader.pid))?.start === leader.start;
}

/** `ip ARGS` in the container's network namespace, the host's ip in the host's other namespaces. */
const inNetns = (
  ctx: RunContext,
  leader: number,
  args: string[],
  o: { input?: string; readOnly?: boolean },
) =>
  ctx.host.exec("nsenter", [`--net=/proc/${leader}/ns/net`, "--", "ip", ...args], {
    allowFail: true,
    timeoutMs: 15_000,
    signal: ctx.signal,
    ...o,
  });

/** What is wrong with host0's address, link or default route in the namespace (undefined: all set). */
async function missing(ctx: RunContext, p: AddressParams, leader: number): Promise<string | undefined> {
  // One process for both (its header line shows the link's flags); a namespace without host0
  // fails at the first line. (`link show` before them in one batch leaves `address show` printing
  // links only.)
  const batch = `address show dev ${HOST0}\nroute show default\n`;
  const r = await inNetns(ctx, leader, ["-4", "-batch", "-"], { input: batch, readOnly: true });
  if (r.exitCode !== 0) return `no ${HOST0} in the container's network namespace`;
  const lines = r.stdout.split("\n");
  if (!lines.some((l) => l.includes(` inet ${p.address} `))) return `${HOST0} does not have ${p.address}`;
  const link = lines.find((l) => l.includes(`: ${HOST0}`)) ?? "";
  if (!/<[^>]*\bUP\b[^>]*>/.test(link)) return `${HOST0} is down`;
  if (p.mtu !== undefined && !link.includes(` mtu ${p.mtu} `)) return `${HOST0}'s MTU is not ${p.mtu}`;
  if (!lines.some((l) => l.startsWith(`default via ${p.gateway} dev ${HOST0}`)))
    return `no default route via ${p.gateway}`;
  return undefined;
}

/** Sets the container's address and default route in its network namespace. */
export const containerAddress = defineTask<AddressParams, null>({
  kind: "container.address",
  title: (p) => `Setting address ${p.address} (gateway ${p.gateway}) of container ${p.name}`,
  status: (p) => ({ name: `Checking address ${p.address} of container ${p.name}`, target: p.name }),
  async check(ctx, p) {
    const leader = await leaderOf(ctx, p);
    if (!leader) return unmet(`no systemd-nspawn process runs ${p.name}`);
    const why = await missing(ctx, p, leader.pid);
    if (why) return unmet(why);
    // What was read is the container's only if the leader is still the process found.
    if (!(await stillLeader(ctx, p, leader))) return unmet(`the init of ${p.name} changed while checked`);
    return met(`${HOST0} ${p.address}, default via ${p.gateway}`);
  },
  async run(ctx, p) {
    // A preview starts no container: there is no namespace to set.
    if (ctx.dryRun) throw new KnownAfterApply("the container's network namespace, once it runs");
    const leader = await leaderOf(ctx, p);
    if (!leader) throw new Error(`container ${p.name} does not run: no network namespace to address`);
    // nspawn moves host0 into the namespace before the init starts; waited for all the same.
    let last = "";
    const done = await poll(ctx.host, { timeoutMs: 10_000, everyMs: 100, signal: ctx.signal }, async () => {
      if (!(await stillLeader(ctx, p, leader)))
        throw new Error(`container ${p.name} stopped while addressed`);
      // -batch stops at the first error: in a namespace without host0, nothing is changed.
      const r = await inNetns(ctx, leader.pid, ["-batch", "-"], { input: addressBatch(p) });
      if (r.exitCode === 0) return true;
      last = r.stderr.trim();
      return /Cannot find device/.test(last) ? undefined : false;
    });
    if (done !== true)
      throw new Error(`cannot set ${p.address} on ${HOST0} of container ${p.name}: ${last || "timed out"}`);
    if (!(await stillLeader(ctx, p, leader))) throw new Error(`container ${p.name} stopped while addressed`);
    return null;
  },
});
