// image.packages-purge: `run down --purge` (and cleanup) deletes the packages layers made for an
// image (image.packages; found by the image their stamp names) and their stamps, unless a loop
// device still holds one (another lab runs on it: its own purge deletes it). Under the layer's lock,
// where image.packages makes it. Nothing to roll back: it only removes a cache.

import { fileIdentity } from "../../src/image/image-host.js";
import { packagesLayersOf } from "../../src/image/layer-store.js";
import { withLoopClaims } from "../../src/image/loop-claims.js";
import { stampPath } from "../../src/image/stamp.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.packages-purge. */
export interface PackagesPurgeParams {
  store: string;
  image: string;
}

/** Delete the image's packages layers, unless another lab uses one. */
export const imagePackagesPurge = defineTask<PackagesPurgeParams>({
  kind: "image.packages-purge",
  title: (p) => `Deleting the packages layers of ${p.image}`,
  async check(ctx, p) {
    return (await packagesLayersOf(ctx.host, p.store, p.image)).length === 0;
  },
  async run(ctx, p) {
    for (const { path } of await packagesLayersOf(ctx.host, p.store, p.image))
      await withImageLock(ctx, path, "deleting", () =>
        withLoopClaims(ctx, async (v) => {
          const id = await fileIdentity(ctx, path);
          if (id && v.loops.some((l) => l.backIno === id.ino && l.backDev === id.dev)) {
            ctx.info(`${path} is kept: a loop device still holds it (another lab's); its purge deletes it`);
            return;
          }
          for (const f of [path, stampPath(p.store, path)]) await ctx.host.fs.rm(f);
        }),
      );
  },
});
