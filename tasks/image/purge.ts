// image.purge: `run down --purge` deletes a downloaded image (never a file:// image: that is the
// user's), its partial download and its stamp. Nothing to roll back: it only removes a cache.
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.purge. */
export interface PurgeParams {
  path: string;
  stamp: string;
}

/** Delete the downloaded image. */
export const imagePurge = defineTask<PurgeParams>({
  kind: "image.purge",
  title: (p) => `Deleting the downloaded image ${p.path}`,
  async check(ctx, p) {
    for (const f of [p.path, `${p.path}.part`, p.stamp]) if (await ctx.host.fs.exists(f)) return false;
    return true;
  },
  async run(ctx, p) {
    for (const f of [p.path, `${p.path}.part`, p.stamp]) await ctx.host.fs.rm(f);
  },
});
