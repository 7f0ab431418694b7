// image.packages-purge: `run down --purge` (and cleanup) deletes the packages layers made for an
// image (image.packages; found by the image their stamp names) and their stamps, unless a loop
// device still holds one (another lab runs on it: its own purge deletes it). Under the layer's lock,
// where image.packages makes it. Nothing to roll back: it only removes a cache.

import type { HostContext } from "../../src/host/host.js";
import { fileIdentity } from "../../src/image/image-host.js";
import { withLoopClaims } from "../../src/image/loop-claims.js";
import { parseStamp, stampPath } from "../../src/image/stamp.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.packages-purge. */
export interface PackagesPurgeParams {
  store: string;
  image: string;
}

/** The layers in the store whose stamp says they were made for `image`. */
async function layersOf(ctx: HostContext, p: PackagesPurgeParams): Promise<string[]> {
  const dir = `${p.store}/layers`;
  const names = await ctx.host.fs.readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.filter((n) => /^[0-9a-f]{64}\.squashfs$/.test(n))) {
    const path = `${dir}/${n}`;
    const text = await ctx.host.fs.readFile(stampPath(p.store, path)).catch(() => "");
    if (parseStamp(text)?.source?.startsWith(`packages:${p.image} `)) out.push(path);
  }
  return out;
}

/** Delete the image's packages layers, unless another lab uses one. */
export const imagePackagesPurge = defineTask<PackagesPurgeParams>({
  kind: "image.packages-purge",
  title: (p) => `Deleting the packages layers of ${p.image}`,
  async check(ctx, p) {
    return (await layersOf(ctx, p)).length === 0;
  },
  async run(ctx, p) {
    for (const path of await layersOf(ctx, p))
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
