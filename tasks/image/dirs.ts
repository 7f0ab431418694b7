// image.dirs: the working directories an image needs (the image store). They are kept: a cache.
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.dirs. */
export interface DirsParams {
  dirs: string[];
}

/** Create the working directories. */
export const imageDirs = defineTask<DirsParams>({
  kind: "image.dirs",
  title: () => "Creating working directories",
  async check(ctx, p) {
    for (const d of p.dirs) if (!(await ctx.host.fs.stat(d))?.isDirectory) return false;
    return true;
  },
  async run(ctx, p) {
    for (const d of p.dirs) await ctx.host.fs.mkdir(d, 0o755);
  },
});
