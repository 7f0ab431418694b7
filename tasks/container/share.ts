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

async function shareCheck(ctx: HostContext, p: ShareParams) {
  const mounts = await readMounts(ctx.host);
  const m = mountHolding(mounts, p.dir);
  if (m?.peerGroup !== undefined) return met(`${p.dir} is in a shared mount (${m.mountPoint})`);
  // A lab an older aplspawn brought up has its mounts there already: a bind now would hide them.
  // It is shared at its next start (after `run stop` or `run down`).
  const below = mountsUnder(mounts, p.dir)[0];
  if (below && !selfBindAt(mounts, p.dir))
    return met(
      `${p.dir} holds mounts made before it was shared (${below.mountPoint}): shared at its next start`,
    );
  return unmet(`${p.dir} is in a private mount (${m?.mountPoint ?? "none"})`);
}

async function shareRun(ctx: HostContext, p: ShareParams): Promise<null> {
  const h = ctx.host;
  const mounts = await readMounts(h);
  const below = mountsUnder(mounts, p.dir);
  if (below.length > 0 && !selfBindAt(mounts, p.dir))
    throw new Error(`${p.dir} has mounts in it already (${below[0]?.mountPoint}); unmount them first`);
  await h.fs.mkdir(p.dir, 0o700);
  // A bind made again onto an existing one would stack; one there already is only made shared.
  const args = selfBindAt(mounts, p.dir)
    ? ["--make-shared", p.dir]
    : ["--bind", "--make-shared", p.dir, p.dir];
  await h.exec("mount", args, { signal: ctx.signal });
  return null;
}

/** What is mounted at or below dir other than the bind itself (the bind goes only when that is nothing). */
const mountedIn = (mounts: readonly MountInfo[], dir: string, bind: MountInfo) =>
  mountsUnder(mounts, dir).filter((m) => m.id !== bind.id);

async function shareRollback(ctx: TaskContext, p: ShareParams, existed: boolean | undefined): Promise<void> {
  if (existed) return;
  const h = ctx.host;
  const bindOf = async () => selfBindAt(await readMounts(h), p.dir);
  const bind = await bindOf();
  if (!bind) return;
  const left = mountedIn(await readMounts(h), p.dir, bind);
  if (left.length > 0)
    throw new Error(`${left[0]?.mountPoint} is still mounted in ${p.dir}; unmount it first`);
  // Nothing is mounted below it, and it shows the very directory it covers: files open through it
  // (the lab's journal and lock, while this run lasts) are the same files without it, so a busy
  // one is detached lazily rather than left.
  await undoUnlessGone(
    async () => {
      const r = await h.exec("umount", ["--", p.dir], { signal: ctx.signal, allowFail: true });
      if (r.exitCode !== 0) await h.exec("umount", ["--lazy", "--", p.dir], { signal: ctx.signal });
    },
    async () => (await bindOf()) !== undefined,
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
