// container.disk: the container's own file system, an ext4 made by aplspawn in a sparse file of
// containers.diskMax bytes in the container's directory. Its upper layer (all the container
// writes) lives in it: a container cannot take more of the host's disk than that, whatever file
// system the host has, and a full disk is the container's alone. It is the container's lasting
// state, as its upper layer is: `run down` keeps it; a purge, a reset or a failed first run delete
// it. A larger diskMax grows it (while it is not attached); a smaller one is not taken from it.
import { dirname } from "node:path";
import { z } from "zod";
import { rmdirIfEmpty } from "../../src/host/files.js";
import type { HostContext } from "../../src/host/host.js";
import { mountsOfDevice } from "../../src/image/image-host.js";
import { loopChange } from "../../src/image/loop-list.js";
import { formatBytes } from "../../src/image/progress.js";
import { detectFilesystem } from "../../src/image/superblock.js";
import { diskIdentity, loopsOf } from "../../src/lab/disk.js";
import { defineTask, met, type TaskContext, unmet } from "../../src/runner/task.js";

/** Journaled parameters. */
const diskParamsSchema = z.object({
  name: z.string(),
  /** The sparse file that holds the file system. */
  file: z.string(),
  /** Its size (containers.diskMax). */
  bytes: z.number().int().positive(),
});
export type DiskParams = z.infer<typeof diskParamsSchema>;

// ext4's superblock is at 1 KiB; its magic at 0x438.
const SUPERBLOCK_BYTES = 4096;

/** What is at the file: nothing, an ext4 of this size, or something else. */
async function diskAt(
  ctx: HostContext,
  file: string,
): Promise<{ kind: "none" } | { kind: "ext4"; size: number } | { kind: "other"; what: string }> {
  const st = await ctx.host.fs.stat(file);
  if (!st) return { kind: "none" };
  if (!st.isFile) return { kind: "other", what: "not a regular file" };
  const fs = detectFilesystem(await ctx.host.fs.readBytes(file, 0, SUPERBLOCK_BYTES));
  return fs === "ext4" ? { kind: "ext4", size: st.size } : { kind: "other", what: "not an ext4 file system" };
}

// No blocks of the file are written that need not be: the inode tables and the journal are left
// sparse (a new file reads as zeros), and no reserved blocks (the container's root would get them).
const MKFS_ARGS = [
  "-q",
  "-F",
  "-m",
  "0",
  "-E",
  "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
];

/** Make the file system in a new sparse file, under a temporary name until it is whole. */
async function make(ctx: TaskContext, p: DiskParams): Promise<void> {
  const h = ctx.host;
  const part = `${p.file}.part`;
  await h.fs.rm(part);
  await h.exec("truncate", ["-s", String(p.bytes), "--", part], { signal: ctx.signal });
  await h.exec("mkfs.ext4", [...MKFS_ARGS, "--", part], { signal: ctx.signal, timeoutMs: 600_000 });
  await h.fs.chmod(part, 0o600);
  await h.fs.rename(part, p.file);
}

/** Grow the (unattached) file system to the new size: the file first, then ext4 over it. */
async function grow(ctx: TaskContext, p: DiskParams, from: number): Promise<void> {
  const h = ctx.host;
  const id = await diskIdentity(ctx, p.file);
  const held = id ? await loopsOf(ctx, id, true) : [];
  if (held.length > 0)
    throw new Error(
      `${p.file} is attached to ${held.map((l) => l.name).join(", ")}: \`aplspawn run stop --only ${p.name}\` first to grow it`,
    );
  ctx.info(`growing ${p.name}'s file system from ${formatBytes(from)} to ${formatBytes(p.bytes)}`);
  await h.exec("truncate", ["-s", String(p.bytes), "--", p.file], { signal: ctx.signal });
  // resize2fs wants a checked file system; e2fsck's 1 means it fixed something, which is fine.
  const ck = await h.exec("e2fsck", ["-f", "-p", "--", p.file], {
    signal: ctx.signal,
    allowFail: true,
    timeoutMs: 3_600_000,
  });
  if (ck.exitCode > 1) throw new Error(`e2fsck ${p.file} failed (exit ${ck.exitCode}): ${ck.stderr.trim()}`);
  await h.exec("resize2fs", ["--", p.file], { signal: ctx.signal, timeoutMs: 3_600_000 });
}

/** Makes (or grows) the container's file system. */
export const containerDisk = defineTask({
  kind: "container.disk",
  journaled: { params: diskParamsSchema },
  kept: true,
  title: (p) => `Making the file system of container ${p.name} (${formatBytes(p.bytes)}, sparse)`,
  rollbackTitle: (p) => `Deleting the file system of container ${p.name}`,
  async check(ctx, p) {
    const d = await diskAt(ctx, p.file);
    if (d.kind === "none") return unmet(`${p.file} does not exist`);
    if (d.kind === "other") return unmet(`${p.file} is ${d.what}`);
    if (d.size < p.bytes) return unmet(`${p.file} holds ${formatBytes(d.size)}, less than diskMax`);
    return met(`${p.file}, ${formatBytes(d.size)}`);
  },
  async run(ctx, p) {
    const d = await diskAt(ctx, p.file);
    if (d.kind === "other")
      throw new Error(
        `${p.file} is ${d.what}, not the container's file system; \`aplspawn run down --purge\` removes it`,
      );
    // A new file may take the inode number of one a device held until lately: what the run saw of
    // the loop devices before is no answer for it.
    if (d.kind === "none") await loopChange(ctx, () => make(ctx, p));
    else if (d.size < p.bytes) await grow(ctx, p, d.size);
    else if (d.size > p.bytes)
      ctx.info(
        `its file system keeps its ${formatBytes(d.size)} (a file system does not shrink; \`aplspawn run reset --only ${p.name}\` makes it anew)`,
      );
    return null;
  },
  async rollback(ctx, { params: p }) {
    const id = await diskIdentity(ctx, p.file);
    // A device detached already (autoclear) but not yet freed by the kernel is no obstacle: it
    // holds the inode, whose space goes with it. One still attached for good, or mounted, is.
    for (const l of id ? await loopsOf(ctx, id, true) : [])
      if (!l.autoclear || (await mountsOfDevice(ctx, l.name)).length > 0)
        throw new Error(`${p.file} is still attached to ${l.name}; detach it first`);
    await loopChange(ctx, () => ctx.host.fs.rm(p.file));
    await ctx.host.fs.rm(`${p.file}.part`);
    // The last of the container's lasting state (after its upper layer and keys): its directory,
    // and the lab's containers/ when it was the last one, go with it.
    const dir = dirname(p.file);
    await rmdirIfEmpty(ctx.host, dir);
    await rmdirIfEmpty(ctx.host, dirname(dir));
  },
});
