// The container's root: an overlayfs of the shared read-only image root (lower) and the
// container's own upper layer, mounted at its merged directory. Unmounting never goes lazy: a
// busy mount is retried, then reported with the processes that hold it.
import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import { isOverlayOf, mountAt, mountOn, readMounts } from "../../src/host/mounts.js";
import { unmountRetrying } from "../../src/host/unmount.js";
import { layerNumbers } from "../../src/lab/snapshots.js";
import { defineTask, met, unmet } from "../../src/runner/task.js";

/** Journaled parameters. */
const overlayParamsSchema = z.object({
  name: z.string(),
  lower: z.string(),
  upper: z.string(),
  work: z.string(),
  merged: z.string(),
  /** A restored snapshot's layers (container.layers), stacked between lower and upper when there. */
  layers: z.string().optional(),
  /** The image's packages layer (image.layer), stacked right above the image when it is mounted. */
  packages: z.string().optional(),
});
export type OverlayParams = z.infer<typeof overlayParamsSchema>;

// overlayfs splits its options at "," and lower dirs at ":"; its whole option string must fit a page.
function mountOptions(p: OverlayParams, layers: string[]): string {
  for (const d of [p.lower, p.upper, p.work, ...layers])
    if (/[,:\\\s]/.test(d))
      throw new Error(`overlayfs cannot use the path ${JSON.stringify(d)} (it holds , : \\ or a space)`);
  const o = `lowerdir=${[...layers, p.lower].join(":")},upperdir=${p.upper},workdir=${p.work}`;
  if (o.length >= 4096) throw new Error(`overlayfs options are ${o.length} bytes; they must fit in 4095`);
  return o;
}

async function isOurOverlay(ctx: HostContext, p: OverlayParams): Promise<boolean> {
  return isOverlayOf(mountAt(await readMounts(ctx.host), p.merged), p.upper);
}

/** Mounts the container's overlayfs. */
export const containerOverlay = defineTask({
  kind: "container.overlay",
  journaled: { params: overlayParamsSchema },
  title: (p) => `Mounting overlayFS for container ${p.name}, merged path is ${p.merged}`,
  rollbackTitle: (p) => `Unmounting overlayFS of container ${p.name} at ${p.merged}`,
  status: (p) => ({ name: "Checking overlayFS mount", target: p.name }),
  async check(ctx, p) {
    const m = mountOn(await readMounts(ctx.host), p.merged);
    if (!m) return unmet(`nothing is mounted at ${p.merged}`);
    return isOverlayOf(m, p.upper)
      ? met(p.merged)
      : unmet(`${p.merged} is a ${m.fstype} mount, not the container's overlay`);
  },
  async run(ctx, p) {
    const h = ctx.host;
    // The topmost layer first, as overlayfs lists them.
    const layers = p.layers ? (await layerNumbers(h, p.layers)).reverse().map((n) => `${p.layers}/${n}`) : [];
    const mounts = await readMounts(h);
    if (p.packages && mountAt(mounts, p.packages)) layers.push(p.packages);
    const opts = mountOptions(p, layers);
    const there = mountOn(mounts, p.merged);
    if (there) throw new Error(`${p.merged} is already a mount point (${there.fstype} from ${there.source})`);
    // The image is untrusted too: its /usr is looked at in its own confined root, never followed.
    if ((await h.root(p.lower, "image").kind("/usr")) !== "dir")
      throw new Error(`the lower layer ${p.lower} holds no root tree (no usr/): is the image attached?`);
    await h.exec("mount", ["-t", "overlay", "overlay", "-o", opts, p.merged], { signal: ctx.signal });
    return null;
  },
  async rollback(ctx, { params: p }) {
    await unmountRetrying(ctx, p.merged, () => isOurOverlay(ctx, p));
  },
});
