// container.layers: the read-only layers a snapshot restore puts under a container's (fresh) upper
// layer: hard links of the snapshot's layers in the container's own directory, so the container
// runs on them whatever becomes of the snapshot. container.overlay stacks them above the image. A
// snapshot taken on another image, or of a container of another set, is refused. Like the upper
// layer it is the container's state: kept by `run down`, removed by a purge, a reset or a restore.
import { z } from "zod";
import { rmdirIfEmpty } from "../../src/host/files.js";
import { overlayLowers, readMounts } from "../../src/host/mounts.js";
import { imageIdOf, layersMisfit, readMeta } from "../../src/lab/snapshots.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
const layersParamsSchema = z.object({
  name: z.string(),
  set: z.string().optional(),
  /** The container's directory, and its layers directory in it. */
  dir: z.string(),
  layers: z.string(),
  snapshot: z.string(),
  /** The container's directory in the snapshot. */
  from: z.string(),
  /** The image file the container runs on. */
  image: z.string(),
});
export type LayersParams = z.infer<typeof layersParamsSchema>;

const origin = (p: LayersParams) => `${p.layers}.json`;

/** Links a snapshot's layers in as the container's read-only layers. */
export const containerLayers = defineTask({
  kind: "container.layers",
  journaled: { params: layersParamsSchema },
  kept: true,
  title: (p) => `Linking the layers of snapshot ${p.snapshot} under container ${p.name}`,
  rollbackTitle: (p) => `Deleting the snapshot layers of container ${p.name}`,
  async check(ctx, p) {
    const o = await ctx.host.fs.readFile(origin(p)).catch(() => "");
    return (
      (await ctx.host.fs.stat(p.layers))?.isDirectory === true &&
      o.trim() === JSON.stringify({ snapshot: p.snapshot })
    );
  },
  async run(ctx, p) {
    const h = ctx.host;
    const meta = await readMeta(h, p.from);
    if (!meta || meta.container !== p.name)
      throw new Error(`snapshot ${p.snapshot} holds no container ${p.name}`);
    const misfit = layersMisfit(meta, { set: p.set, image: await imageIdOf(h, p.image) });
    if (misfit) throw new Error(misfit);
    await h.fs.mkdir(p.dir, 0o700);
    const part = `${p.layers}.part`;
    for (const d of [p.layers, part, origin(p)]) await h.fs.rm(d);
    // Hard links: a snapshot's files are never written (a lower layer is read-only to overlayfs).
    await h.exec("cp", ["-al", "-T", "--", `${p.from}/layers`, part], {
      signal: ctx.signal,
      timeoutMs: 3_600_000,
    });
    await h.fs.chmod(part, 0o700);
    await h.fs.rename(part, p.layers);
    await h.fs.writeFile(origin(p), `${JSON.stringify({ snapshot: p.snapshot })}\n`, 0o600);
    return null;
  },
  async rollback(ctx, { params: p }) {
    const used = (await readMounts(ctx.host)).find((m) =>
      overlayLowers(m).some((l) => l.startsWith(`${p.layers}/`)),
    );
    if (used)
      throw new Error(`${p.layers} holds lower layers of the mount at ${used.mountPoint}; unmount it first`);
    for (const d of [origin(p), p.layers, `${p.layers}.part`]) await ctx.host.fs.rm(d);
    await rmdirIfEmpty(ctx.host, p.dir);
    await rmdirIfEmpty(ctx.host, p.dir.slice(0, p.dir.lastIndexOf("/")));
  },
});
