// lab.logs-gone: `run down --purge` and `cleanup` delete the console logs failed runs kept
// (src/lab/kept-logs.ts), which no journal entry records. Nothing to roll back: they were only kept
// to be read.
import { defineTask } from "../../src/runner/task.js";

/** Parameters: the lab's directory of kept logs. */
export interface LogsGoneParams {
  dir: string;
}

/** Deletes the kept logs of the lab's failed runs. */
export const labLogsGone = defineTask<LogsGoneParams, null>({
  kind: "lab.logs-gone",
  title: (p) => `Deleting the logs failed runs kept in ${p.dir}`,
  async check(ctx, p) {
    return !(await ctx.host.fs.exists(p.dir));
  },
  async run(ctx, p) {
    await ctx.host.fs.rm(p.dir);
    return null;
  },
});
