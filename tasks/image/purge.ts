// image.purge: `run down --purge` deletes a downloaded image (never a file:// image: that is the
// user's), its partial download and its stamp. Nothing to roll back: it only removes a cache. The
// store may be shared: it waits while another lab gets the image (the image's lock), and keeps an
// image that a loop device still holds (another lab uses it), saying whose; the last lab's purge
// deletes it.
import { fileIdentity } from "../../src/image/image-host.js";
import { withLoopClaims } from "../../src/image/loop-claims.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.purge. */
export interface PurgeParams {
  path: string;
  stamp: string;
}

/** Delete the downloaded image, unless another lab uses it. */
export const imagePurge = defineTask<PurgeParams>({
  kind: "image.purge",
  title: (p) => `Deleting the downloaded image ${p.path}`,
  async check(ctx, p) {
    for (const f of [p.path, `${p.path}.part`, p.stamp]) if (await ctx.host.fs.exists(f)) return false;
    return true;
  },
  run: (ctx, p) =>
    withImageLock(ctx, p.path, "deleting", () =>
      // Under the loop lock, where every lab attaches: none attaches it between the look and the rm.
      withLoopClaims(ctx, async (v) => {
        const id = await fileIdentity(ctx, p.path);
        const users = id ? v.loops.filter((l) => l.backIno === id.ino && l.backDev === id.dev) : [];
        if (users.length > 0) {
          const whose = users.map((l) => `${l.name}${v.owner(l.name) ? ` (${v.owner(l.name)})` : ""}`);
          ctx.info(
            `${p.path} is kept: loop devices still hold it (${whose.join(", ")}), another lab's (or one the kernel is still freeing); the purge of the last lab using it deletes it`,
          );
          return;
        }
        for (const f of [p.path, `${p.path}.part`, p.stamp]) await ctx.host.fs.rm(f);
      }),
    ),
});
