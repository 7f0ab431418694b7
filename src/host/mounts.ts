// The mount table as the kernel reports it (/proc/self/mountinfo, read through the Host): the one
// reader every check and rollback asks, rather than anything remembered.
import { posix } from "node:path";
import type { Host } from "./host.js";

/** One line of /proc/self/mountinfo. */
export interface MountInfo {
  id: number;
  parent: number;
  /** The mounted filesystem's device, "major:minor". */
  dev: string;
  /** The directory of the filesystem mounted here (a bind mount's source subtree). */
  root: string;
  mountPoint: string;
  /** Per-mount options ("ro" lives here for bind mounts). */
  options: string[];
  fstype: string;
  source: string;
  /** Per-superblock options, e.g. lowerdir=…, upperdir=…, workdir=… for overlayfs. */
  superOptions: string[];
  /** The peer group of a shared mount (`shared:N`): mounts and unmounts under it propagate to its copies. */
  peerGroup?: number;
}

// mountinfo escapes space, tab, newline and backslash as octal.
const unescapeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Parse mountinfo text. */
export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const f = line.split(" ");
    // Optional fields (shared:N, master:N) end at a lone "-".
    const sep = f.indexOf("-", 6);
    if (sep < 0 || f.length < sep + 3) continue;
    const shared = f.slice(6, sep).find((o) => o.startsWith("shared:"));
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2] ?? "",
      root: unescapeOctal(f[3] ?? ""),
      mountPoint: unescapeOctal(f[4] ?? ""),
      options: (f[5] ?? "").split(","),
      fstype: f[sep + 1] ?? "",
      source: unescapeOctal(f[sep + 2] ?? ""),
      superOptions: unescapeOctal(f[sep + 3] ?? "").split(","),
      ...(shared ? { peerGroup: Number(shared.slice(7)) } : {}),
    });
  }
  return out;
}

/** The mounts of the calling process's mount namespace. */
export async function readMounts(host: Host): Promise<MountInfo[]> {
  return parseMountinfo(await host.fs.readFile("/proc/self/mountinfo"));
}

const stripSlash = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") : p);

/** The mount visible at `path` (the last one mounted there wins), if any. */
export function mountAt(mounts: readonly MountInfo[], path: string): MountInfo | undefined {
  const p = stripSlash(path);
  return mounts.filter((m) => m.mountPoint === p).pop();
}

/** The mount `path` is in: the one at it or at its nearest ancestor (the last one mounted there wins). */
export function mountHolding(mounts: readonly MountInfo[], path: string): MountInfo | undefined {
  const p = stripSlash(path);
  let best: MountInfo | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    if (mp !== p && mp !== "/" && !p.startsWith(`${mp}/`)) continue;
    if (!best || mp.length >= best.mountPoint.length) best = m;
  }
  return best;
}

/**
 * The bind mount of `dir` onto itself, if one is there: a mount at dir of the same filesystem as the
 * mount under it, showing the very directory it covers (the lowest such one).
 */
export function selfBindAt(mounts: readonly MountInfo[], dir: string): MountInfo | undefined {
  const p = stripSlash(dir);
  const byId = new Map(mounts.map((m) => [m.id, m]));
  return mounts.find((m) => {
    const under = m.mountPoint === p ? byId.get(m.parent) : undefined;
    if (!under || under.dev !== m.dev || under.mountPoint === p) return false;
    const rel = under.mountPoint === "/" ? p : p.slice(under.mountPoint.length);
    return m.root === posix.join(under.root, rel);
  });
}

/** The mount at `path` over the bind of it onto itself (tasks/container/share.ts), or at it when there is none. */
export function mountOn(mounts: readonly MountInfo[], path: string): MountInfo | undefined {
  const m = mountAt(mounts, path);
  return m && m === selfBindAt(mounts, path) ? undefined : m;
}

/** Every mount at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(mounts: readonly MountInfo[], dir: string): MountInfo[] {
  const d = stripSlash(dir);
  return mounts
    .filter((m) => m.mountPoint === d || m.mountPoint.startsWith(`${d}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.id - a.id);
}

/** An option's value in a mount's option list (overlayfs paths hold no commas). */
function mountOption(options: readonly string[], key: string): string | undefined {
  for (const o of options) if (o.startsWith(`${key}=`)) return o.slice(key.length + 1);
  return undefined;
}

/** Whether the overlay mounted at `m` has `upper` as its upper layer. */
/** The upper directory of an overlayfs mount (undefined for any other mount). */
export const overlayUpper = (m: MountInfo | undefined): string | undefined =>
  m?.fstype === "overlay" ? mountOption(m.superOptions, "upperdir") : undefined;

/** Whether m is an overlayfs mount with this upper directory. */
export const isOverlayOf = (m: MountInfo | undefined, upper: string): boolean => overlayUpper(m) === upper;

/** The lower directories of an overlayfs mount, top first ([] for any other mount). */
export const overlayLowers = (m: MountInfo): string[] =>
  m.fstype === "overlay" ? (mountOption(m.superOptions, "lowerdir")?.split(":") ?? []) : [];
