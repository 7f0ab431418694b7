// The parser for what util-linux reports about loop devices, kept pure so it can be tested on
// captured text (mounts: src/host/mounts.ts).

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
  /** Its backing file is deleted (losetup's " (deleted)"): no path names that inode any more. */
  deleted?: boolean;
}

/** losetup's words when another process took the device it found (`--find` is not atomic): try again. */
export const LOSETUP_RACE =
  /busy|resource temporarily unavailable|already in use|no such device|could not find any free/i;

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
    ...(/ \(deleted\)$/.test(String(d["back-file"] ?? "")) ? { deleted: true } : {}),
  }));
}
