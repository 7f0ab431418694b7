// A container's upper layer: everything the container changes. It outlives `run down` (the lab
// keeps its state); `run down --purge`, `run cleanup` and a failed first run remove it.

import { isOverlayOf, readMounts } from "../../src/host/mounts.js";
import { rmdirIfEmpty } from "../../src/lab/files.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
export interface UpperParams {
  name: string;
  dir: string;
  upper: string;
}

/** Creates the (empty) upper layer directory. */
export const containerUpper = defineTask<UpperParams, null>({
  kind: "container.upper",
  // The container's state: an ordinary teardown keeps it, a purge removes it.
  kept: true,
  title: (p) => `Creating upper layer for container ${p.name}`,
  rollbackTitle: (p) => `Deleting upper layer of container ${p.name}`,
  async check(ctx, p) {
    return (await ctx.host.fs.stat(p.upper))?.isDirectory === true;
  },
  async run(ctx, p) {
    await ctx.host.fs.mkdir(p.dir, 0o700);
    await ctx.host.fs.mkdir(p.upper, 0o755);
    return null;
  },
  async rollback(ctx, { params: p }) {
    const used = (await readMounts(ctx.host)).find((m) => isOverlayOf(m, p.upper));
    if (used)
      throw new Error(`${p.upper} is the upper layer of the mount at ${used.mountPoint}; unmount it first`);
    await ctx.host.fs.rm(p.upper);
    await rmdirIfEmpty(ctx.host, p.dir);
    await rmdirIfEmpty(ctx.host, p.dir.slice(0, p.dir.lastIndexOf("/")));
  },
});
