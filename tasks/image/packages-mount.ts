// image.layer: the packages layer image.packages made (when the image needs one), mounted read-only
// beside the image's lower directory; container.overlay stacks it between the container's upper
// layer and the image. `mount -o loop` with autoclear: the loop device goes with the unmount, so no
// loop claim is kept for it (image.purge and the layers' purge still see it by its backing file).
import { z } from "zod";
import { ExitError } from "../../src/errors.js";
import { rmdirIfEmpty } from "../../src/host/files.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import type { RunContext } from "../../src/host/run-scope.js";
import { unmountRetrying } from "../../src/host/unmount.js";
import { backs, fileIdentity } from "../../src/image/image-host.js";
import { loopChange, seenLoops } from "../../src/image/loop-list.js";
import { defineTask, met, unmet } from "../../src/runner/task.js";
import { layerOfImageSchema, wantedLayer } from "./packages-layer.js";

/** Parameters of image.layer. */
const layerMountParamsSchema = layerOfImageSchema.extend({
  /** Where the layer is mounted (paths.ts packagesLayerDir). */
  target: z.string(),
  /** containers.privateUsers: a layer cannot be stacked there yet (it has no idmapped view). */
  privateUsers: z.boolean(),
});
export type LayerMountParams = z.infer<typeof layerMountParamsSchema>;

/** Whether `target` is a squashfs mount of the file at `layer`. */
async function mountedLayer(ctx: RunContext, target: string, layer: string): Promise<boolean> {
  const m = mountAt(await readMounts(ctx.host), target);
  const id = await fileIdentity(ctx, layer);
  if (m?.fstype !== "squashfs" || !id) return false;
  const dev = m.source.replace(/^\/dev\//, "");
  return (await seenLoops(ctx)).some((l) => l.name.replace(/^\/dev\//, "") === dev && backs(l, id, 0));
}

/** Mounts the image's packages layer (or checks that it needs none). */
export const imageLayerMount = defineTask({
  kind: "image.layer",
  journaled: { params: layerMountParamsSchema },
  title: (p) => `Mounting the packages layer of ${p.image} at ${p.target}`,
  rollbackTitle: (p) => `Unmounting the packages layer at ${p.target}`,
  async check(ctx, p) {
    const l = await wantedLayer(ctx, p);
    const there = mountAt(await readMounts(ctx.host), p.target);
    if (!l)
      return there
        ? unmet(`${p.target} is mounted, but the image needs no packages layer`)
        : met("none needed");
    return (await mountedLayer(ctx, p.target, l.path))
      ? met(l.path)
      : unmet(`${l.path} is not mounted at ${p.target}`);
  },
  async run(ctx, p) {
    const l = await wantedLayer(ctx, p);
    const there = mountAt(await readMounts(ctx.host), p.target);
    if (there) throw new Error(`${p.target} is already a mount point (${there.fstype} from ${there.source})`);
    if (!l) return null;
    if (p.privateUsers)
      throw new ExitError(
        `image.packages: the image needs ${l.packages.join(" ")}, but a packages layer cannot be stacked under containers.privateUsers yet: install them in the image, or set image.packages: []`,
      );
    await ctx.host.fs.mkdir(p.target, 0o700);
    await loopChange(ctx, () =>
      ctx.host.exec("mount", ["-t", "squashfs", "-o", "ro,loop,nodev,nosuid", "--", l.path, p.target], {
        signal: ctx.signal,
      }),
    );
    return null;
  },
  async rollback(ctx, { params: p }) {
    const m = mountAt(await readMounts(ctx.host), p.target);
    if (m?.fstype === "squashfs")
      await loopChange(ctx, () =>
        unmountRetrying(ctx, p.target, async () => !!mountAt(await readMounts(ctx.host), p.target)),
      );
    if (!mountAt(await readMounts(ctx.host), p.target)) await rmdirIfEmpty(ctx.host, p.target);
  },
});
