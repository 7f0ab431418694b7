// A network namespace that lives only as long as one process of ours holds it: `unshare --net --
// sleep infinity`, started detached. Unlike `ip netns add`, nothing is mounted under /run/netns:
// the namespace is not visible host-wide, and it goes away with its holder (and with whatever joined
// it): a veth whose peer is inside goes with it. The holder's PID and start time are written to a
// file in a directory of the caller's own, so a later run (rollback after a crash) can end it
// without trusting a PID alone: a PID that ended and was reused is never signalled.
import { z } from "zod";
import type { Host } from "./host.js";
import { poll } from "./poll.js";
import { cmdline, netnsOf, procStat } from "./proc.js";

const holderSchema = z.object({ pid: z.number().int().positive(), start: z.number() });
/** The holding process: its PID and its start time (clock ticks since boot). */
export type NetnsHolder = z.infer<typeof holderSchema>;

const RECORD = "netns-holder.json";
const HOLDER_ARGV = ["sleep", "infinity"];

/** The holder's namespace, as a path for `nsenter --net=` or `systemd-nspawn --network-namespace-path=`. */
export const netnsPath = (h: NetnsHolder) => `/proc/${h.pid}/ns/net`;

/**
 * Start a holder of a new network namespace and record it in `dir` (a directory of the caller's
 * own, made before). Returns once the process is in its new namespace.
 */
export async function holdNetns(host: Host, dir: string, signal?: AbortSignal): Promise<NetnsHolder> {
  const ours = await netnsOf(host);
  const pid = await host.spawnDetached("unshare", ["--net", "--", ...HOLDER_ARGV], {
    logFile: `${dir}/netns-holder.log`,
  });
  const start = (await procStat(host, pid))?.start;
  if (start === undefined) throw new Error(`the network namespace's holder (PID ${pid}) ended at once`);
  const holder = { pid, start };
  // Recorded before anything else: whatever happens next, the holder can be found and ended.
  await host.fs.writeFile(`${dir}/${RECORD}`, JSON.stringify(holder), 0o600);
  const moved = await poll(host, { timeoutMs: 10_000, everyMs: 10, signal }, async () => {
    const ns = await netnsOf(host, pid);
    if (ns === undefined) throw new Error(`the network namespace's holder (PID ${pid}) ended`);
    return ns !== ours && (await cmdline(host, pid))?.[0] === HOLDER_ARGV[0] ? true : undefined;
  });
  if (!moved) {
    await releaseNetns(host, dir);
    throw new Error(`the network namespace's holder (PID ${pid}) did not make its namespace in 10 s`);
  }
  return holder;
}

/** End the holder recorded in `dir`, if it is still the very process started (PID and start time). */
export async function releaseNetns(host: Host, dir: string): Promise<void> {
  let holder: NetnsHolder;
  try {
    holder = holderSchema.parse(JSON.parse(await host.fs.readFile(`${dir}/${RECORD}`)));
  } catch {
    return; // none recorded (never started, or already released)
  }
  if ((await procStat(host, holder.pid))?.start === holder.start) host.kill(holder.pid, "SIGKILL");
  await host.fs.rm(`${dir}/${RECORD}`);
}
