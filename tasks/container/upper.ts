// A container's upper layer: everything the container changes. It outlives `run down` (the lab
// keeps its state); `run down --purge`, `run cleanup` and a failed first run remove it.

import { z } from "zod";
import { rmdirIfEmpty } from "../../src/host/files.js";
import type { HostContext } from "../../src/host/host.js";
import { isOverlayOf, readMounts } from "../../src/host/mounts.js";
import type { RunContext } from "../../src/host/run-scope.js";
import { diskIdentity, diskMountAt } from "../../src/lab/disk.js";
import { claimRange, rangeOf, releaseRange } from "../../src/lab/id-ranges.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
const upperParamsSchema = z.object({
  name: z.string(),
  dir: z.string(),
  upper: z.string(),
  /** containers.privateUsers: the layer belongs to a user id range of its own (absent in old journals). */
  privateUsers: z.boolean().optional(),
  /**
   * The overlay's work directory, beside the layer on the container's own file system (container.disk):
   * its file and where it is mounted. Absent in journals from before containers had one.
   */
  work: z.string().optional(),
  disk: z.object({ file: z.string(), mount: z.string() }).optional(),
});
export type UpperParams = z.infer<typeof upperParamsSchema>;

// An upper layer made for the other mode cannot be reused: its files' owners mean other ids.
async function modeProblem(ctx: HostContext, p: UpperParams): Promise<string | undefined> {
  const st = await ctx.host.fs.stat(p.upper);
  if (!st) return undefined;
  const base = await rangeOf(ctx.host, p.upper);
  const empty = (await ctx.host.fs.readdir(p.upper)).length === 0;
  if (p.privateUsers && base === undefined && !empty) return "was made without containers.privateUsers";
  if (!p.privateUsers && base !== undefined) return "was made with containers.privateUsers";
  return undefined;
}

const diskMounted = async (ctx: RunContext, d: { file: string; mount: string }) =>
  (await diskMountAt(ctx, d.mount, await diskIdentity(ctx, d.file))) !== undefined;

/** Creates the (empty) upper layer directory, and the overlay's work directory beside it. */
export const containerUpper = defineTask({
  kind: "container.upper",
  journaled: { params: upperParamsSchema },
  // The container's state: an ordinary teardown keeps it, a purge removes it.
  kept: true,
  title: (p) => `Creating upper layer for container ${p.name}`,
  rollbackTitle: (p) => `Deleting upper layer of container ${p.name}`,
  async check(ctx, p) {
    if (p.disk && !(await diskMounted(ctx, p.disk))) return false;
    if (p.work && !(await ctx.host.fs.stat(p.work))?.isDirectory) return false;
    if (!(await ctx.host.fs.stat(p.upper))?.isDirectory || (await modeProblem(ctx, p))) return false;
    return !p.privateUsers || (await rangeOf(ctx.host, p.upper)) !== undefined;
  },
  async run(ctx, p) {
    const problem = await modeProblem(ctx, p);
    if (problem)
      throw new Error(
        `the upper layer of ${p.name} (${p.upper}) ${problem}; \`aplspawn run down --purge\` removes it`,
      );
    // A layer an older aplspawn left on the host's file system is never silently set aside.
    const legacy = `${p.dir}/upper`;
    if (p.disk && p.upper !== legacy && (await ctx.host.fs.readdir(legacy).catch(() => [])).length > 0)
      throw new Error(
        `${p.name} has an upper layer from before containers had a file system of their own (${legacy}); \`aplspawn run down --purge\` removes it (move it elsewhere first to keep its files)`,
      );
    // Never on the host's file system under the mount point: the layer would have no bound.
    if (p.disk && !ctx.dryRun && !(await diskMounted(ctx, p.disk)))
      throw new Error(`the file system of ${p.name} is not mounted at ${p.disk.mount}`);
    await ctx.host.fs.mkdir(p.dir, 0o700);
    await ctx.host.fs.mkdir(p.upper, 0o755);
    if (p.work) await ctx.host.fs.mkdir(p.work, 0o700);
    // The layer's root directory is the container's /: owned by the container's root.
    if (p.privateUsers) {
      const base = await claimRange(ctx.host, p.upper, ctx.signal, p.disk?.file);
      await ctx.host.fs.chown(p.upper, base, base);
    }
    return null;
  },
  async rollback(ctx, { params: p }) {
    const used = (await readMounts(ctx.host)).find((m) => isOverlayOf(m, p.upper));
    if (used)
      throw new Error(`${p.upper} is the upper layer of the mount at ${used.mountPoint}; unmount it first`);
    await ctx.host.fs.rm(p.upper);
    if (p.work) await ctx.host.fs.rm(p.work);
    if (p.privateUsers) await releaseRange(ctx.host, p.upper, ctx.signal);
    await rmdirIfEmpty(ctx.host, p.dir);
    await rmdirIfEmpty(ctx.host, p.dir.slice(0, p.dir.lastIndexOf("/")));
  },
});
