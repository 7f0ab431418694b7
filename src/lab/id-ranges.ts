// User id ranges of containers run in a user namespace (containers.privateUsers): each container's
// root is host uid BASE, its ids 0..65535 are BASE..BASE+65535, and no two containers on the host
// share a range. A host-wide registry (root's alone) holds one claim per range naming the upper
// layer it belongs to; a claim lives as long as that upper layer does (the files in it are owned
// by the range), so a lab brought up again gets its range back, even after a reboot. Claims are
// made under one host-wide lock; only aplspawn's own records are read, never anything a container
// controls.
import { join } from "node:path";
import type { Host } from "../host/host.js";
import { withHostLock } from "../host/lock.js";
import { mountAt, overlayUpper, readMounts } from "../host/mounts.js";

/** Where the claims live. */
export const RANGES_DIR = "/var/lib/aplspawn/userns";
const LOCK = "/run/aplspawn/userns.lock";
/** Ids per container: the whole 16-bit range a distribution's users and groups use. */
export const RANGE = 0x10000;
// Where ranges are taken from: systemd-nspawn's own --private-users=pick range.
const FIRST = 0x00080000;
const LAST = 0x6fff0000;

interface Claim {
  upper: string;
  /**
   * The container's file system (tasks/container/disk.ts) that holds the upper layer: while it is
   * not mounted the layer is out of sight, and the claim lives as long as the file does.
   */
  disk?: string;
}

async function readClaim(host: Host, base: number): Promise<Claim | undefined> {
  try {
    const c = JSON.parse(await host.fs.readFile(join(RANGES_DIR, String(base)))) as Claim;
    return typeof c.upper === "string" ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every claim whose upper layer still exists: base → upper. With sweep (under the lock), the others
 * (a lab directory deleted by hand) are removed.
 */
async function liveClaims(host: Host, sweep = false): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const n of await host.fs.readdir(RANGES_DIR).catch(() => [] as string[])) {
    const base = Number(n);
    const c = /^\d+$/.test(n) && base % RANGE === 0 ? await readClaim(host, base) : undefined;
    const live =
      c && ((await host.fs.stat(c.upper))?.isDirectory || (c.disk && (await host.fs.stat(c.disk))?.isFile));
    if (c && live) out.set(base, c.upper);
    else if (sweep) await host.fs.rm(join(RANGES_DIR, n));
  }
  return out;
}

/** The range claimed for an upper layer, if any. */
export async function rangeOf(host: Host, upper: string): Promise<number | undefined> {
  for (const [base, u] of await liveClaims(host)) if (u === upper) return base;
  return undefined;
}

/** The container root's host id for the container whose overlay is mounted at merged (0: none). */
export async function idShiftOf(host: Host, merged: string): Promise<number> {
  const upper = overlayUpper(mountAt(await readMounts(host), merged));
  return (upper && (await rangeOf(host, upper))) || 0;
}

// Id ranges the host already gives out: its users and groups, and subordinate ids (/etc/subuid, /etc/subgid).
async function usedByHost(host: Host): Promise<[number, number][]> {
  const out: [number, number][] = [];
  const read = (f: string) => host.fs.readFile(f).catch(() => "");
  for (const f of ["/etc/passwd", "/etc/group"])
    for (const l of (await read(f)).split("\n")) {
      const id = Number(l.split(":")[2]);
      if (l && Number.isInteger(id)) out.push([id, 1]);
    }
  for (const f of ["/etc/subuid", "/etc/subgid"])
    for (const l of (await read(f)).split("\n")) {
      const [, start, count] = l.split(":").map(Number);
      if (Number.isInteger(start) && Number.isInteger(count)) out.push([start as number, count as number]);
    }
  return out;
}

/**
 * The range of an upper layer: its claim, or a new one (the first range nobody uses). disk: the file
 * system that holds the layer, if it has one of its own.
 */
export function claimRange(host: Host, upper: string, signal?: AbortSignal, disk?: string): Promise<number> {
  return withHostLock(host, LOCK, "aplspawn (user id ranges)", signal, async () => {
    await host.fs.mkdir(RANGES_DIR, 0o700);
    const claims = await liveClaims(host, true);
    for (const [base, u] of claims) if (u === upper) return base;
    const used = await usedByHost(host);
    for (let base = FIRST; base <= LAST; base += RANGE) {
      if (claims.has(base)) continue;
      if (used.some(([s, n]) => s < base + RANGE && base < s + n)) continue;
      await host.fs.writeFile(
        join(RANGES_DIR, String(base)),
        `${JSON.stringify({ upper, ...(disk ? { disk } : {}) })}\n`,
        0o600,
      );
      return base;
    }
    throw new Error(`no free user id range left in ${FIRST}..${LAST + RANGE - 1}`);
  });
}

/** Give up the range of an upper layer (it is being removed). */
export function releaseRange(host: Host, upper: string, signal?: AbortSignal): Promise<void> {
  return withHostLock(host, LOCK, "aplspawn (user id ranges)", signal, async () => {
    for (const [base, u] of await liveClaims(host, true))
      if (u === upper) await host.fs.rm(join(RANGES_DIR, String(base)));
  });
}
