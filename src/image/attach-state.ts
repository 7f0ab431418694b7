// What the live host says about the image and the lower layer: which loop devices hold the image's
// root, and what is mounted at the lower directory. Shared by the attach tasks' checks and the probes.

import { ExitError } from "../errors.js";
import type { HostContext } from "../host/host.js";
import { type MountInfo, mountAt, readMounts } from "../host/mounts.js";
import type { RunContext } from "../host/run-scope.js";
import { met, unmet, type Verdict } from "../runner/task.js";
import { backs, blockDevNumber, fileIdentity, imageLayout } from "./image-host.js";
import { seenLoops } from "./loop-list.js";
import { describeLayout, type ImageLayout, PartitionTableError } from "./partition-table.js";
import type { FileIdentity } from "./stamp.js";
import type { FsType } from "./superblock.js";
import type { LoopInfo } from "./system-info.js";

/** The image as attach sees it. */
export type ImageState =
  | { kind: "missing" }
  | { kind: "dir"; identity: FileIdentity }
  | { kind: "file"; identity: FileIdentity; layout: ImageLayout; fs: FsType | undefined };

/** Look at the image: missing, a directory tree, or a file with a readable layout (throws on a bad table). */
export async function inspectImage(ctx: HostContext, image: string): Promise<ImageState> {
  const st = await ctx.host.fs.stat(image);
  const identity = st && (await fileIdentity(ctx, image));
  if (!st || !identity) return { kind: "missing" };
  if (st.isDirectory) return { kind: "dir", identity };
  try {
    const { layout, fs } = await imageLayout(ctx, image);
    return { kind: "file", identity, layout, fs };
  } catch (e) {
    if (e instanceof PartitionTableError) throw new ExitError(`Image ${image}: ${e.message}`);
    throw e;
  }
}

/** The message for a missing image (the original tool's advice). */
export const missingImage = (image: string) =>
  new ExitError(`Image ${image} not found: run \`aplspawn run getimage\` first`);

/** An image file whose root filesystem is known, or an error saying what is wrong. */
export function requireRoot(
  image: string,
  s: ImageState,
): Extract<ImageState, { kind: "file" }> & { fs: FsType } {
  if (s.kind === "missing") throw missingImage(image);
  if (s.kind === "dir") throw new ExitError(`Image ${image} is a directory, not an image file`);
  if (!s.fs)
    throw new ExitError(
      `Image ${image}: ${describeLayout(s.layout)} holds no known filesystem (squashfs, ext4, erofs, btrfs, xfs)`,
    );
  return s as Extract<ImageState, { kind: "file" }> & { fs: FsType };
}

/** Loop devices holding the image's root (read-only, right offset), of this lab's or another's. */
export function rootLoopsIn(loops: LoopInfo[], s: Extract<ImageState, { kind: "file" }>): LoopInfo[] {
  return loops.filter((l) => backs(l, s.identity, s.layout.offset) && l.ro);
}

/** Whether a mount's filesystem is that loop device. */
export async function mountIsDevice(ctx: HostContext, m: MountInfo, dev: string): Promise<boolean> {
  if (m.source === dev) return true;
  const num = await blockDevNumber(ctx, dev);
  return num !== undefined && m.dev === num;
}

/** What is mounted at the lower directory and whether it is the image's root, read-only. */
export interface LowerState {
  image: ImageState;
  mount: MountInfo | undefined;
  /** The loop device (file image) behind the mount, when it is one of the image's. */
  device: string | undefined;
  /** The mount is the image's root (loop device of the image, or a bind of the image directory). */
  isImage: boolean;
  readOnly: boolean;
  loops: LoopInfo[];
}

/** Whether the lower directory holds the image's root, read-only (image.lower's check), and what is there. */
export function lowerVerdict(s: LowerState): Verdict {
  if (!s.mount) return unmet("nothing is mounted there");
  const what = `${s.device ?? s.mount.source} (${s.mount.fstype}, ${s.readOnly ? "ro" : "rw"})`;
  if (!s.isImage) return unmet(`${what} is mounted there, not the image's root`);
  if (!s.readOnly) return unmet(`${what}: mounted read-write`);
  return met(what);
}

/** Whether the image's root is attached and mounted at the lower directory (image.loop's check). */
export function loopVerdict(s: LowerState): Verdict {
  if (s.image.kind === "missing") return unmet("the image does not exist");
  if (s.image.kind === "dir") return met("a directory tree: no loop device needed");
  if (s.loops.length === 0) return unmet("no loop device holds the image's root partition");
  const devices = s.loops.map((l) => l.name).join(", ");
  return s.isImage && s.readOnly
    ? met(devices)
    : unmet(
        `${devices} hold${s.loops.length === 1 ? "s" : ""} the image's root, not mounted read-only on the lower directory`,
      );
}

/**
 * Inspect the image and the lower directory (the checks' view: the loop devices as the run last
 * saw them; what is mounted at the lower directory holds its device, whoever else attaches).
 */
export async function lowerState(ctx: RunContext, image: string, lowerDir: string): Promise<LowerState> {
  const img = await inspectImage(ctx, image);
  const mount = mountAt(await readMounts(ctx.host), lowerDir);
  const loops = img.kind === "file" ? rootLoopsIn(await seenLoops(ctx), img) : [];
  let device: string | undefined;
  let isImage = false;
  if (mount && img.kind === "file") {
    for (const l of loops)
      if (await mountIsDevice(ctx, mount, l.name)) {
        device = l.name;
        isImage = true;
        break;
      }
  } else if (mount && img.kind === "dir") {
    const seen = await fileIdentity(ctx, lowerDir);
    isImage = seen?.ino === img.identity.ino && seen.dev === img.identity.dev;
  }
  return { image: img, mount, device, isImage, readOnly: mount?.options.includes("ro") ?? false, loops };
}
