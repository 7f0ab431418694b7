// A container's own view of the shared image root (containers.privateUsers only): an idmapped,
// read-only bind of the lab's lower layer, where every owner k appears as the container's base+k.
// The overlay stacks the container's upper layer on it, so the image's root-owned files are the
// container root's, and root in the container is an unprivileged id on the host.

import { z } from "zod";
import { rmdirIfEmpty } from "../../src/host/files.js";
import type { HostContext } from "../../src/host/host.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { RANGE, rangeOf } from "../../src/lab/id-ranges.js";
import { idmapBind } from "../../src/lab/idmap-mount.js";
import { defineTask, undoUnlessGone } from "../../src/runner/task.js";

/** Journaled parameters. */
const lowerViewParamsSchema = z.object({
  name: z.string(),
  /** The lab's lower layer (the image root). */
  lower: z.string(),
  /** Where the container's view is mounted. */
  target: z.string(),
  /** The container's upper layer, whose claim holds the id range. */
  upper: z.string(),
});
export type LowerViewParams = z.infer<typeof lowerViewParamsSchema>;

// The view is ours when the mount there is idmapped, of the lower layer's filesystem, and shows the
// image's root directory owned by the container's root.
async function isOurView(ctx: HostContext, p: LowerViewParams): Promise<boolean> {
  const mounts = await readMounts(ctx.host);
  const [m, lower] = [mountAt(mounts, p.target), mountAt(mounts, p.lower)];
  if (!m || !lower || m.dev !== lower.dev || !m.options.includes("idmapped")) return false;
  const base = await rangeOf(ctx.host, p.upper);
  const [seen, orig] = [await ctx.host.fs.stat(p.target), await ctx.host.fs.stat(p.lower)];
  return base !== undefined && !!seen && !!orig && seen.uid === orig.uid + base && seen.ino === orig.ino;
}

/** Mounts the container's idmapped view of the image root. */
export const containerLowerView = defineTask({
  kind: "container.lower",
  journaled: { params: lowerViewParamsSchema },
  title: (p) => `Mounting the image root for container ${p.name} in its own user id range`,
  rollbackTitle: (p) => `Unmounting the image root view of container ${p.name}`,
  async check(ctx, p) {
    return isOurView(ctx, p);
  },
  async run(ctx, p) {
    const h = ctx.host;
    const base = await rangeOf(h, p.upper);
    if (base === undefined) throw new Error(`${p.upper} has no user id range (container.upper claims one)`);
    const there = mountAt(await readMounts(h), p.target);
    if (there) throw new Error(`${p.target} is already a mount point (${there.fstype} from ${there.source})`);
    await h.fs.mkdir(p.target, 0o700);
    await idmapBind(h, p.lower, p.target, base, RANGE, ctx.signal);
    if (!(await isOurView(ctx, p)))
      throw new Error(
        `${p.target}: the idmapped view of ${p.lower} does not show its owners shifted by ${base}`,
      );
    return null;
  },
  async rollback(ctx, { params: p }) {
    if (await isOurView(ctx, p))
      await undoUnlessGone(
        () => ctx.host.exec("umount", ["--", p.target], { signal: ctx.signal }),
        () => isOurView(ctx, p),
      );
    if (!mountAt(await readMounts(ctx.host), p.target)) await rmdirIfEmpty(ctx.host, p.target);
  },
});
