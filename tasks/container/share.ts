// lab.share and container.share: the lab's directory, and each container's merged directory, made
// the root of a shared mount (a bind of the directory onto itself, in a peer group of its own) when
// the mount they are in is not shared already (a host without systemd as PID 1, or a private mount
// namespace). systemd-nspawn gives each container a copy of every host mount there is when it starts;
// under a private mount, unmounting ours later does not reach those copies, and they keep another
// container's file system and loop device alive until that container stops (a `stop --only` waited
// 30 s for its loop device, then left it to the kernel). Under a shared mount the copies are slaves
// of ours, and the unmount reaches them. Made before anything is mounted below the directory;
// rollback unmounts it once nothing is mounted below it any more.
import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import { type MountInfo, mountHolding, mountsUnder, readMounts, selfBindAt } from "../../src/host/mounts.js";
import { defineTask, met, type TaskContext, undoUnlessGone, unmet } from "../../src/runner/task.js";

/** Journaled parameters. */
const shareParamsSchema = z.object({ dir: z.string(), name: z.string().optional() });
export type ShareParams = z.infer<typeof shareParamsSchema>;
/** Journaled before the mount: whether a bind of the directory onto itself was there already. */
const shareIntentSchema = z.object({ existed: z.boolean() });

/** A mount below dir that is not under a bind of dir onto itself: made before dir was shared. */
const madeBefore = (mounts: readonly MountInfo[], dir: string): MountInfo | undefined =>
  selfBindAt(mounts, dir) ? undefined : mountsUnder(mounts, dir)[0];

async function shareCheck(ctx: HostContext, p: ShareParams) {
  const mounts = await readMounts(ctx.host);
  const m = mountHolding(mounts, p.dir);
  if (m?.peerGroup !== undefined) return met(`${p.dir} is in a shared mount (${m.mountPoint})`);
  // A lab an older aplspawn brought up has its mounts there already: a bind now would hide them.
  // It is shared at its next start (after `run stop` or `run down`).
  const before = madeBefore(mounts, p.dir);
  if (before)
    return met(
      `${p.dir} holds mounts made before it was shared (${before.mountPoint}): shared at its next start`,
    );
  return unmet(`${p.dir} is in a private mount (${m?.mountPoint ?? "none"})`);
}

async function shareRun(ctx: HostContext, p: ShareParams): Promise<null> {
  const mounts = await readMounts(ctx.host);
  const before = madeBefore(mounts, p.dir);
  if (before) throw new Error(`${p.dir} has mounts in it already (${before.mountPoint}); unmount them first`);
  // A bind made again onto an existing one would stack; one there already is only made shared.
  const args = selfBindAt(mounts, p.dir)
    ? ["--make-shared", p.dir]
    : ["--bind", "--make-shared", p.dir, p.dir];
  await ctx.host.exec("mount", args, { signal: ctx.signal });
  return null;
}

async function shareRollback(ctx: TaskContext, p: ShareParams, existed: boolean | undefined): Promise<void> {
  if (existed) return;
  const h = ctx.host;
  const mounts = await readMounts(h);
  const bind = selfBindAt(mounts, p.dir);
  if (!bind) return;
  const left = mountsUnder(mounts, p.dir).find((m) => m.id !== bind.id);
  if (left) throw new Error(`${left.mountPoint} is still mounted in ${p.dir}; unmount it first`);
  // Nothing is mounted below it, and it shows the very directory it covers: the files open through
  // it (the journal and lock of the run undoing it) are the same files without it. So it is
  // detached lazily: a plain umount is always busy in `run down`, for nothing.
  await undoUnlessGone(
    () => h.exec("umount", ["--lazy", "--", p.dir], { signal: ctx.signal }),
    async () => selfBindAt(await readMounts(h), p.dir) !== undefined,
  );
}

const shareTask = (kind: string, what: (p: ShareParams) => string) =>
  defineTask({
    kind,
    journaled: { params: shareParamsSchema, intent: shareIntentSchema },
    title: (p) => `Making ${what(p)} a shared mount`,
    rollbackTitle: (p) => `Unmounting the shared mount of ${what(p)}`,
    check: shareCheck,
    async prepare(ctx, p) {
      return { existed: selfBindAt(await readMounts(ctx.host), p.dir) !== undefined };
    },
    run: shareRun,
    async rollback(ctx, { params: p, intent }) {
      await shareRollback(ctx, p, intent?.existed);
    },
  });

/** The lab's directory (its lower layers, disks and views are mounted in it). */
export const labShare = shareTask("lab.share", (p) => `the lab directory ${p.dir}`);

/** A container's merged directory (its overlay is mounted on it). */
export const containerShare = shareTask(
  "container.share",
  (p) => `the root directory of container ${p.name}`,
);
