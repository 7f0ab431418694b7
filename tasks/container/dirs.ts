// A container's directories: its own dir in the lab (its log, its file system) and its merged root under
// machinesDir. Rollback removes what did not exist before, never a mount point or a non-empty root;
// the rollback of a failed run first moves the container's log to the run's kept logs.

import { dirname } from "node:path";
import { z } from "zod";
import { errorMessage } from "../../src/errors.js";
import { rmdirIfEmpty } from "../../src/host/files.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { keepLog } from "../../src/lab/kept-logs.js";
import { defineTask, type FailedRun, type TaskContext } from "../../src/runner/task.js";

/** Journaled parameters: every path rollback needs. */
const dirsParamsSchema = z.object({
  name: z.string(),
  dir: z.string(),
  /** The overlay's work directory, in journals from before it moved to the container's file system. */
  work: z.string().optional(),
  merged: z.string(),
  logFile: z.string(),
  /** Where a failed run keeps the logs of the containers it rolls back (absent in older journals). */
  keptLogs: z.string().optional(),
});
export type DirsParams = z.infer<typeof dirsParamsSchema>;
/** The directories that existed before run (journaled: rollback leaves them). */
const dirsIntentSchema = z.object({ existed: z.array(z.string()) });
const dirsResultSchema = z.object({ created: z.array(z.string()) });

const dirsOf = (p: DirsParams) => [p.dir, ...(p.work ? [p.work] : []), p.merged];

/** Creates the container's lab directory and merged mount point (and, in old journals, the work directory). */
export const containerDirs = defineTask({
  kind: "container.dirs",
  journaled: { params: dirsParamsSchema, intent: dirsIntentSchema, result: dirsResultSchema },
  title: (p) => `Creating directories for container ${p.name}`,
  rollbackTitle: (p) => `Removing directories of container ${p.name}`,
  async check(ctx, p) {
    for (const d of dirsOf(p)) if (!(await ctx.host.fs.stat(d))?.isDirectory) return false;
    return true;
  },
  async prepare(ctx, p) {
    const existed: string[] = [];
    for (const d of dirsOf(p)) if (await ctx.host.fs.exists(d)) existed.push(d);
    return { existed };
  },
  async run(ctx, p, intent) {
    await ctx.host.fs.mkdir(p.dir, 0o700);
    if (p.work) await ctx.host.fs.mkdir(p.work, 0o700);
    // Root's alone, machinesDir included when it is made here: others must not reach the
    // containers' trees (a setuid file in a container is one for the host otherwise).
    await ctx.host.fs.mkdir(p.merged, 0o700);
    return { created: dirsOf(p).filter((d) => !intent.existed.includes(d)) };
  },
  async rollback(ctx, { params: p, intent }) {
    const h = ctx.host;
    const mine = (d: string) => !(intent?.existed ?? []).includes(d);
    const m = mountAt(await readMounts(h), p.merged);
    if (m) throw new Error(`${p.merged} is still mounted (${m.fstype}); unmount it first`);
    if (mine(p.merged)) await rmdirIfEmpty(h, p.merged);
    // The overlay work dir holds only the kernel's scratch ("work/"), useless once unmounted.
    if (p.work && mine(p.work)) await h.fs.rm(p.work);
    if (ctx.failedRun && p.keptLogs) await keep(ctx, p, p.keptLogs, ctx.failedRun);
    await h.fs.rm(p.logFile);
    await h.fs.rm(`${p.logFile}.1`);
    if (mine(p.dir)) await rmdirIfEmpty(h, p.dir);
    const parent = p.dir.slice(0, p.dir.lastIndexOf("/"));
    await rmdirIfEmpty(h, parent);
  },
});

// The log tells why the run failed: kept if it can be (the directory goes either way).
async function keep(ctx: TaskContext, p: DirsParams, logsDir: string, run: FailedRun): Promise<void> {
  try {
    const kept = await keepLog(ctx.host, { logFile: p.logFile, logsDir, runId: run.id, name: p.name });
    if (!kept) return;
    ctx.info(`kept its log as ${kept}`);
    run.note(`the logs of the containers this run rolled back are kept in ${dirname(kept)}`);
  } catch (e) {
    ctx.info(`could not keep its log ${p.logFile}: ${errorMessage(e)}`);
  }
}
