// A container's own file system (tasks/container/disk*.ts): an ext4 in a sparse file of the lab's,
// attached to a loop device and mounted in the container's directory. What the tasks share: the
// devices that hold the file, found by its inode (the file is the container's alone: a device
// backed by it is this container's, whoever attached it), and the mount of one of them.
import type { HostContext } from "../host/host.js";
import { type MountInfo, mountAt, readMounts } from "../host/mounts.js";
import type { RunContext } from "../host/run-scope.js";
import { backs, blockDevNumber, fileIdentity } from "../image/image-host.js";
import { listLoops, seenLoops } from "../image/loop-list.js";
import type { LoopInfo } from "../image/system-info.js";

/** A file's inode and device, as losetup shows a backing file's. */
export interface DiskIdentity {
  ino: string;
  dev: string;
}

/** The disk file's identity, or undefined when there is no such file. */
export async function diskIdentity(ctx: HostContext, file: string): Promise<DiskIdentity | undefined> {
  const id = await fileIdentity(ctx, file);
  return id && { ino: id.ino, dev: id.dev };
}

/**
 * The loop devices that hold the disk (normally none or one), as the run last saw them (no device
 * of its disk changes but by this run: src/image/loop-list.ts); `now` for a look begun after the call.
 * id is a live file's: a device whose backing file is deleted holds another inode, even when a look
 * from before the kernel freed it shows the number the new file was given since.
 */
export async function loopsOf(ctx: RunContext, id: DiskIdentity, now = false): Promise<LoopInfo[]> {
  return (await (now ? listLoops(ctx) : seenLoops(ctx))).filter((l) => !l.deleted && backs(l, id, 0));
}

/** What is mounted at `mount` when it is one of the disk's devices (an ext4 of ours), else undefined. */
export async function diskMountAt(
  ctx: RunContext,
  mount: string,
  id: DiskIdentity | undefined,
): Promise<MountInfo | undefined> {
  const m = mountAt(await readMounts(ctx.host), mount);
  if (!m || !id) return undefined;
  for (const l of await loopsOf(ctx, id))
    if (m.source === l.name || m.dev === (await blockDevNumber(ctx, l.name))) return m;
  return undefined;
}
