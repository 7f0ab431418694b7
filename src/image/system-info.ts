// Parsers for what the kernel and util-linux report about loop devices and mounts, kept pure so
// they can be tested on captured text.

/** A loop device as `losetup --list --json -O LOSETUP_COLUMNS` reports it. */
export interface LoopInfo {
  name: string;
  backFile: string;
  /** Backing file inode and device ("major:minor"), to match a file whatever path was used. */
  backIno: string;
  backDev: string;
  offset: number;
  sizelimit: number;
  ro: boolean;
  autoclear: boolean;
}

/** The columns asked of losetup for LoopInfo. */
export const LOSETUP_COLUMNS = "NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN,OFFSET,SIZELIMIT,RO,AUTOCLEAR";

/** Parse `losetup --list --json -O LOSETUP_COLUMNS` (empty output means no devices). */
export function parseLosetupJson(out: string): LoopInfo[] {
  if (!out.trim()) return [];
  const j = JSON.parse(out) as { loopdevices?: Record<string, unknown>[] };
  const bool = (v: unknown) => v === true || v === 1 || v === "1";
  const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
  return (j.loopdevices ?? []).map((d) => ({
    name: String(d.name ?? ""),
    backFile: String(d["back-file"] ?? "").replace(/ \(deleted\)$/, ""),
    backIno: String(d["back-ino"] ?? "").trim(),
    backDev: String(d["back-maj:min"] ?? "").replace(/\s+/g, ""),
    offset: num(d.offset),
    sizelimit: num(d.sizelimit),
    ro: bool(d.ro),
    autoclear: bool(d.autoclear),
  }));
}

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
  superOptions: string[];
}

const unescapeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Parse /proc/self/mountinfo. */
export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0 || f.length < sep + 3) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2]!,
      root: unescapeOctal(f[3]!),
      mountPoint: unescapeOctal(f[4]!),
      options: f[5]!.split(","),
      fstype: f[sep + 1]!,
      source: unescapeOctal(f[sep + 2]!),
      superOptions: (f[sep + 3] ?? "").split(","),
    });
  }
  return out;
}

/** The mount visible at `path` (the last one mounted there wins), if any. */
export function mountAt(mounts: readonly MountInfo[], path: string): MountInfo | undefined {
  const p = stripSlash(path);
  return mounts.filter((m) => m.mountPoint === p).pop();
}

/** Every mount at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(mounts: readonly MountInfo[], dir: string): MountInfo[] {
  const d = stripSlash(dir);
  return mounts
    .filter((m) => m.mountPoint === d || m.mountPoint.startsWith(`${d}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.id - a.id);
}

const stripSlash = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") : p);
