// Mounts as the kernel reports them (/proc/self/mountinfo, read through the Host): the live truth
// that overlay checks and rollbacks rely on, rather than anything remembered.
import type { Host } from "../host/host.js";

/** One line of mountinfo. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-superblock options, e.g. lowerdir=…,upperdir=…,workdir=… for overlayfs. */
  superOptions: string;
}

// mountinfo escapes space, tab, newline and backslash as octal.
const unescapeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parse /proc/self/mountinfo text. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left = "", right = ""] = line.split(" - ");
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({
      mountPoint: unescapeOctal(l[4] ?? ""),
      fsType: r[0] ?? "",
      source: unescapeOctal(r[1] ?? ""),
      superOptions: unescapeOctal(r[2] ?? ""),
    });
  }
  return out;
}

/** The mounts of the calling process's mount namespace. */
export async function mounts(host: Host): Promise<MountEntry[]> {
  return parseMountinfo(await host.fs.readFile("/proc/self/mountinfo"));
}

/** The topmost mount at a path (the one a process sees), if the path is a mount point. */
export async function mountAt(host: Host, path: string): Promise<MountEntry | undefined> {
  return (await mounts(host)).filter((m) => m.mountPoint === path).pop();
}

/** An option's value in a comma-separated option string (overlayfs paths hold no commas). */
export function mountOption(options: string, key: string): string | undefined {
  for (const o of options.split(",")) if (o.startsWith(`${key}=`)) return o.slice(key.length + 1);
  return undefined;
}
