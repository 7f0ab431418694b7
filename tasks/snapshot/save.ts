// snapshot.save: one container's state kept in a snapshot, taken while the container is stopped
// (its overlay unmounted: the layer is still). The upper layer is the container's own and its root
// wrote every name in it: it is copied with `cp -a` (links copied as links, never followed; special
// files made, never opened; owners, modes and overlayfs's xattrs and whiteouts kept), to a directory
// of root's that nobody else can reach, and renamed into place only once complete. The layers the
// container already ran on (a snapshot restored) are hard-linked below it: the snapshot stands alone.
// Kept by `run down`; `run down --purge`, `run cleanup` and `snapshot delete` remove it.
import { z } from "zod";
import { rmdirIfEmpty } from "../../src/host/files.js";
import { imageIdOf, layerNumbers, readMeta, type SnapshotMeta } from "../../src/lab/snapshots.js";
import { defineTask, type JournalRef } from "../../src/runner/task.js";

/** Journaled parameters. */
const saveParamsSchema = z.object({
  snapshot: z.string(),
  name: z.string(),
  set: z.string().optional(),
  /** The container's upper layer, and the layers it runs on (container.layers). */
  upper: z.string(),
  layers: z.string(),
  /** The image file it runs on. */
  image: z.string(),
  /** The lab's snapshots directory, the snapshot's, and this container's in it. */
  root: z.string(),
  dest: z.string(),
});
export type SaveParams = z.infer<typeof saveParamsSchema>;

/** A container's save entry's id: the snapshot's name, then the container's. */
export const saveId = (snapshot: string, container: string) => `snapshot.save[${snapshot}:${container}]`;

/** Whether a journal entry is one of a snapshot's save entries (what deleting it undoes). */
export const savedIn = (snapshot: string) => (e: JournalRef) =>
  e.kind === "snapshot.save" && e.id.startsWith(`snapshot.save[${snapshot}:`);

/** A copy of a tree can take long: an hour before it is called stuck. */
const COPY_MS = 3_600_000;
const snapshotDir = (p: SaveParams) => p.dest.slice(0, p.dest.lastIndexOf("/"));

/** Copies a stopped container's layers into the snapshot. */
export const snapshotSave = defineTask({
  kind: "snapshot.save",
  journaled: { params: saveParamsSchema },
  kept: true,
  title: (p) => `Saving container ${p.name} in snapshot ${p.snapshot}`,
  rollbackTitle: (p) => `Deleting container ${p.name} of snapshot ${p.snapshot}`,
  async check(ctx, p) {
    return (await readMeta(ctx.host, p.dest))?.container === p.name;
  },
  async run(ctx, p) {
    const h = ctx.host;
    if (!(await h.fs.stat(p.upper))?.isDirectory)
      throw new Error(`${p.name} has no upper layer (${p.upper})`);
    const part = `${p.dest}.part`;
    for (const d of [p.dest, part]) await h.fs.rm(d);
    for (const d of [p.root, snapshotDir(p), part, `${part}/layers`]) await h.fs.mkdir(d, 0o700);
    // -T: the destination is the copy itself, never a directory to copy into.
    const cp = (flags: string[], from: string, to: string) =>
      h.exec("cp", [...flags, "-T", "--", from, to], { signal: ctx.signal, timeoutMs: COPY_MS });
    const below = await layerNumbers(h, p.layers);
    for (const n of below) await cp(["-al"], `${p.layers}/${n}`, `${part}/layers/${n}`);
    const top = (below.at(-1) ?? 0) + 1;
    // A copy-on-write clone where the filesystem makes them (btrfs, xfs), else a copy.
    await cp(["-a", "--reflink=auto"], p.upper, `${part}/layers/${top}`);
    const meta: SnapshotMeta = {
      snapshot: p.snapshot,
      container: p.name,
      ...(p.set === undefined ? {} : { set: p.set }),
      image: await imageIdOf(h, p.image),
      time: new Date().toISOString(),
      layers: top,
    };
    await h.fs.writeFile(`${part}/meta.json`, `${JSON.stringify(meta, null, 2)}\n`, 0o600);
    await h.fs.rename(part, p.dest);
    return null;
  },
  async rollback(ctx, { params: p }) {
    await ctx.host.fs.rm(p.dest);
    await ctx.host.fs.rm(`${p.dest}.part`);
    await rmdirIfEmpty(ctx.host, snapshotDir(p));
    await rmdirIfEmpty(ctx.host, p.root);
  },
});
