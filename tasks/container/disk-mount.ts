// container.disk-mount: the container's file system mounted in its directory, where its upper and
// work layers live (container.upper makes them there). nodev, nosuid: nothing a container wrote is
// a device or a setuid program for the host (the container sees its files through its overlay, whose
// own mount decides that for it). Unmounting never goes lazy (src/host/unmount.ts).
import { z } from "zod";
import { KnownAfterApply } from "../../src/errors.js";
import { rmdirIfEmpty } from "../../src/host/files.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { unmountRetrying } from "../../src/host/unmount.js";
import { loopChange } from "../../src/image/loop-list.js";
import { diskIdentity, diskMountAt, loopsOf } from "../../src/lab/disk.js";
import { defineTask, met, unmet } from "../../src/runner/task.js";

/** Journaled parameters. */
const diskMountParamsSchema = z.object({
  name: z.string(),
  /** The disk file (container.disk), whose loop device is mounted. */
  file: z.string(),
  /** Where. */
  mount: z.string(),
});
export type DiskMountParams = z.infer<typeof diskMountParamsSchema>;
/** The device mounted, and the file it holds. */
const diskMountResultSchema = z.object({ device: z.string(), ino: z.string(), dev: z.string() });

// noinit_itable: mkfs left the inode tables sparse (zeros), nothing to zero in the background.
const OPTIONS = "nodev,nosuid,noinit_itable";

/** Mounts the container's file system. */
export const containerDiskMount = defineTask({
  kind: "container.disk-mount",
  journaled: { params: diskMountParamsSchema, result: diskMountResultSchema },
  title: (p) => `Mounting the file system of container ${p.name} at ${p.mount}`,
  rollbackTitle: (p) => `Unmounting the file system of container ${p.name} at ${p.mount}`,
  async check(ctx, p) {
    if (await diskMountAt(ctx, p.mount, await diskIdentity(ctx, p.file))) return met(p.mount);
    const m = mountAt(await readMounts(ctx.host), p.mount);
    return unmet(
      m ? `${p.mount} is a mount of ${m.source}, not of ${p.file}` : `nothing is mounted at ${p.mount}`,
    );
  },
  async run(ctx, p) {
    const h = ctx.host;
    const id = await diskIdentity(ctx, p.file);
    // Looked at now (what is mounted must be this disk's device as it is, not as the run saw it).
    const l = id && (await loopsOf(ctx, id, true))[0];
    if (!id || !l) {
      if (ctx.dryRun) throw new KnownAfterApply("the loop device container.disk-loop attaches");
      throw new Error(`${p.file} is on no loop device`);
    }
    const there = mountAt(await readMounts(h), p.mount);
    if (there) throw new Error(`${p.mount} is already a mount point (${there.fstype} from ${there.source})`);
    await h.fs.mkdir(p.mount, 0o700);
    await h.exec("mount", ["-t", "ext4", "-o", OPTIONS, "--", l.name, p.mount], { signal: ctx.signal });
    return { device: l.name, ...id };
  },
  async rollback(ctx, { params: p, result }) {
    const id = result ?? (await diskIdentity(ctx, p.file));
    // An autoclear device (a detach tried while it was mounted) goes with its mount.
    await loopChange(ctx, () =>
      unmountRetrying(ctx, p.mount, async () => (await diskMountAt(ctx, p.mount, id)) !== undefined),
    );
    await rmdirIfEmpty(ctx.host, p.mount);
  },
});
