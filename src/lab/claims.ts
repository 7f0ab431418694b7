// Which lab has which names on this host. A bridge, an iptables chain and a subnet are one network
// namespace's; a container's name is the whole host's (nspawn's /run dirs, machined). Each lab
// claims its own, one claim per lab and part (its network, its containers), under /run and a
// host-wide lock: of two labs started at the same instant with one bridge, the second is refused,
// naming the first, before it creates anything, so neither's rollback can take the other's bridge.
// A claim lives while its lab does (its journal exists) and, for a network, while that network
// namespace does; stale claims are removed whenever the claims are read.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseCidr } from "../../config/ip.js";
import { ExitError } from "../errors.js";
import { rmdirIfEmpty } from "../host/files.js";
import type { Host, HostContext } from "../host/host.js";
import { withHostLock } from "../host/lock.js";
import { netnsOf } from "../host/proc.js";
import { journalPath } from "../runner/journal-path.js";

/** Where the claims live (root's alone: /run is). */
export const CLAIMS_DIR = "/run/aplspawn-claims";
const LOCK = "/run/aplspawn/claims.lock";

/** A lab's network: its names in one network namespace. */
export interface NetClaim {
  part: "net";
  lab: string;
  labDir: string;
  /** The network namespace (its inode number). */
  netns: string;
  bridge: string;
  chains: string[];
  subnet: string;
}

/** A lab's containers: their names, host-wide. */
export interface ContainersClaim {
  part: "containers";
  lab: string;
  labDir: string;
  names: string[];
}

export type Claim = NetClaim | ContainersClaim;

/** The network namespace aplspawn runs in. */
export const currentNetns = async (host: Host): Promise<string> => (await netnsOf(host)) ?? "";

const fileOf = (c: Pick<Claim, "labDir" | "part">) =>
  join(CLAIMS_DIR, `${createHash("sha256").update(c.labDir).digest("hex").slice(0, 16)}-${c.part}.json`);

/** Whether two subnets share an address. */
export function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return x.network <= y.broadcast && y.network <= x.broadcast;
}

/** What `mine` would take that `other` has, in words. */
function clashes(mine: Claim, other: Claim): string[] {
  if (mine.part === "containers" && other.part === "containers")
    return mine.names.filter((n) => other.names.includes(n)).map((n) => `container name ${n}`);
  if (mine.part !== "net" || other.part !== "net" || mine.netns !== other.netns) return [];
  return [
    ...(mine.bridge === other.bridge ? [`bridge ${mine.bridge}`] : []),
    ...mine.chains.filter((ch) => other.chains.includes(ch)).map((ch) => `iptables chain ${ch}`),
    ...(overlaps(mine.subnet, other.subnet) ? [`subnet ${mine.subnet} (it has ${other.subnet})`] : []),
  ];
}

async function netnsAlive(host: Host, netns: string): Promise<boolean> {
  if ((await currentNetns(host)) === netns) return true;
  for (const pid of await host.fs.readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    if ((await netnsOf(host, Number(pid))) === netns) return true;
  }
  return false;
}

async function readClaim(host: Host, file: string): Promise<Claim | undefined> {
  try {
    const c = JSON.parse(await host.fs.readFile(file)) as Claim;
    return typeof c.labDir === "string" && fileOf(c) === file ? c : undefined;
  } catch {
    return undefined;
  }
}

/** The live claims of labs other than the one in labDir (stale ones removed); call under the lock. */
async function othersLive(ctx: HostContext, labDir?: string): Promise<Claim[]> {
  const out: Claim[] = [];
  for (const n of await ctx.host.fs.readdir(CLAIMS_DIR).catch(() => [] as string[])) {
    const file = join(CLAIMS_DIR, n);
    const c = await readClaim(ctx.host, file);
    if (c && c.labDir === labDir) continue;
    const live =
      c !== undefined &&
      (await ctx.host.fs.exists(journalPath(c.labDir))) &&
      (c.part !== "net" || (await netnsAlive(ctx.host, c.netns)));
    if (live) out.push(c);
    else await ctx.host.fs.rm(file);
  }
  return out;
}

/** Take the claim, or fail naming the lab that has what it asks for (nothing is written then). */
export function takeClaim(ctx: HostContext, c: Claim): Promise<void> {
  return withHostLock(ctx.host, LOCK, "aplspawn (lab claims)", ctx.signal, async () => {
    for (const other of await othersLive(ctx, c.labDir)) {
      const what = clashes(c, other);
      if (what.length > 0)
        throw new ExitError(
          `${what.join(", ")}: already lab ${other.lab}'s (${other.labDir}); two labs on one host need their own names and subnets`,
        );
    }
    await ctx.host.fs.mkdir(CLAIMS_DIR, 0o700);
    await ctx.host.fs.writeFile(fileOf(c), `${JSON.stringify(c)}\n`, 0o600);
  });
}

/** Every lab's live claims (what `aplspawn init` must not pick). */
export function liveClaims(ctx: HostContext): Promise<Claim[]> {
  return withHostLock(ctx.host, LOCK, "aplspawn (lab claims)", ctx.signal, () => othersLive(ctx));
}

/** Whether the lab holds exactly this claim. */
export async function holdsClaim(ctx: HostContext, c: Claim): Promise<boolean> {
  const now = await readClaim(ctx.host, fileOf(c));
  return now !== undefined && JSON.stringify(now) === JSON.stringify(c);
}

/** Let go of the lab's claim of that part; the directory goes with the last claim. */
export function dropClaim(ctx: HostContext, c: Pick<Claim, "labDir" | "part">): Promise<void> {
  return withHostLock(ctx.host, LOCK, "aplspawn (lab claims)", ctx.signal, async () => {
    await ctx.host.fs.rm(fileOf(c));
    await rmdirIfEmpty(ctx.host, CLAIMS_DIR);
  });
}
