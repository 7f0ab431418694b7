// Snapshots (`aplspawn snapshot`): a container's state kept as read-only overlayfs layers in the
// lab's directory, <lab>/snapshots/NAME/CONTAINER/{layers/1..n, meta.json}, root's alone. Layer 1 sits
// just above the image; a container restored from a snapshot gets hard links of its layers under a
// fresh upper layer (<container dir>/layers), so a snapshot never depends on another one or on the
// container, and deleting it takes nothing from a container that runs on its layers.
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "../errors.js";
import type { Host } from "../host/host.js";

/** A snapshot's name: a directory name of its own, never a path. */
export function snapshotNameProblem(name: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || name.includes(".."))
    return `snapshot name ${JSON.stringify(name)}: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit, no ".." and no "/"`;
  return undefined;
}

/** A valid snapshot name, or a usage error. */
export function snapshotName(name: string): string {
  const p = snapshotNameProblem(name);
  if (p) throw new UsageError(p);
  return name;
}

/** What the image file was when a snapshot was taken: a restore onto another image is refused. */
export const imageIdSchema = z.object({ path: z.string(), size: z.number(), mtime: z.string() });
export type ImageId = z.infer<typeof imageIdSchema>;

/** One container of a snapshot: its meta.json. */
export const snapshotMetaSchema = z.object({
  snapshot: z.string(),
  container: z.string(),
  /** Its set (containers.sets); absent in a lab without sets. */
  set: z.string().optional(),
  image: imageIdSchema,
  /** ISO 8601, UTC. */
  time: z.string(),
  layers: z.number().int().positive(),
});
export type SnapshotMeta = z.infer<typeof snapshotMetaSchema>;

/** The image file as it is now. */
export async function imageIdOf(host: Host, path: string): Promise<ImageId> {
  const st = await host.fs.stat(path);
  if (!st?.isFile) throw new Error(`the image ${path} is not there`);
  return { path, size: st.size, mtime: st.mtime };
}

/** Why an image differs from the one a snapshot was taken on (undefined: the same). */
export function imageChange(was: ImageId, now: ImageId): string | undefined {
  if (was.path !== now.path) return `was taken on the image ${was.path}, this container runs on ${now.path}`;
  if (was.size !== now.size || was.mtime !== now.mtime)
    return `was taken on ${was.path} as it was before (size ${was.size}, modified ${was.mtime}); it changed since`;
  return undefined;
}

/**
 * Why a snapshot's layers of a container do not fit it as it is in the lab now (another set, another
 * image, or the image changed since): undefined when they fit.
 */
export function layersMisfit(
  m: SnapshotMeta,
  now: { set?: string | undefined; image: ImageId },
): string | undefined {
  const set = (x: string | undefined) => (x === undefined ? "no set" : `set ${x}`);
  if (m.set !== now.set)
    return `snapshot ${m.snapshot} holds ${m.container} of ${set(m.set)}; in this lab it is of ${set(now.set)}`;
  const changed = imageChange(m.image, now.image);
  return changed && `snapshot ${m.snapshot} ${changed}: its layers only fit the image they were made on`;
}

/** The image file as it is now, or what stands for one that is gone (it fits no snapshot). */
export const imageIdOrGone = (host: Host, path: string): Promise<ImageId> =>
  imageIdOf(host, path).catch(() => ({ path, size: -1, mtime: "" }));

/** The numbered layers in a layers directory, bottom (1) first; [] when it is absent. */
export async function layerNumbers(host: Host, dir: string): Promise<number[]> {
  const names = await host.fs.readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => /^[1-9]\d*$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/** A container's meta.json in a snapshot; undefined when absent or unreadable. */
export async function readMeta(host: Host, dir: string): Promise<SnapshotMeta | undefined> {
  try {
    return snapshotMetaSchema.parse(JSON.parse(await host.fs.readFile(join(dir, "meta.json"))));
  } catch {
    return undefined;
  }
}

/** A snapshot as `snapshot list` shows it. */
export interface SnapshotInfo {
  name: string;
  containers: SnapshotMeta[];
  /** Bytes on disk (files hard-linked with another snapshot or a container counted here too). */
  bytes: number;
  /** When its last container was saved. */
  time: string;
}

/** The lab's snapshots (only complete containers: a save cut short is not one), by name. */
export async function listSnapshots(host: Host, root: string): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  for (const name of (await host.fs.readdir(root).catch(() => [] as string[])).sort()) {
    if (snapshotNameProblem(name)) continue;
    const dir = join(root, name);
    const containers: SnapshotMeta[] = [];
    for (const c of (await host.fs.readdir(dir).catch(() => [] as string[])).sort()) {
      const m = await readMeta(host, join(dir, c));
      if (m && m.container === c && m.snapshot === name) containers.push(m);
    }
    if (containers.length === 0) continue;
    const du = await host.exec("du", ["-sb", "--", dir], {
      readOnly: true,
      allowFail: true,
      timeoutMs: 300_000,
    });
    out.push({
      name,
      containers,
      bytes: Number(du.stdout.split(/\s/)[0]) || 0,
      time:
        containers
          .map((m) => m.time)
          .sort()
          .at(-1) ?? "",
    });
  }
  return out;
}
