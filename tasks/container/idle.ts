// A guard for `run cleanup`: the lab's working directories are only emptied when nothing of the lab
// runs or is mounted (a check-only task: it changes nothing and has no rollback).

import { readMounts } from "../../src/host/mounts.js";
import type { RunContext } from "../../src/host/run-scope.js";
import { findNspawnWhere } from "../../src/lab/nspawn-procs.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters. */
export interface IdleParams {
  labDir: string;
  machinesDir: string;
  /** What the lab's container names start with (config/containers.ts namePrefixes). */
  prefixes: string[];
}

async function busy(ctx: RunContext, p: IdleParams): Promise<string[]> {
  const out: string[] = [];
  const under = (path: string, dir: string) => path.startsWith(`${dir}/`);
  const ours = (name: string) => p.prefixes.some((x) => name.startsWith(x));
  for (const n of await findNspawnWhere(
    ctx,
    (argv) =>
      argv.some((a) => a.startsWith("--directory=") && under(a.slice(12), p.machinesDir)) &&
      argv.some((a) => a.startsWith("--machine=") && ours(a.slice(10))),
  ))
    out.push(`container process ${n.pid} (${n.argv.find((a) => a.startsWith("--machine="))?.slice(10)})`);
  for (const m of await readMounts(ctx.host))
    if (
      under(m.mountPoint, p.labDir) ||
      (m.fstype === "overlay" &&
        under(m.mountPoint, p.machinesDir) &&
        ours(m.mountPoint.slice(p.machinesDir.length + 1)))
    )
      out.push(`mount ${m.mountPoint} (${m.fstype})`);
  return out;
}

/** Fails while containers of the lab run or its layers are mounted. */
export const labIdle = defineTask<IdleParams, null>({
  kind: "lab.idle",
  title: () => "Checking that no container of the lab runs",
  async check(ctx, p) {
    return (await busy(ctx, p)).length === 0;
  },
  async run(ctx, p) {
    const b = await busy(ctx, p);
    if (b.length > 0)
      throw new Error(
        `the lab is in use (${b.join("; ")}): run \`aplspawn run stop\` or \`aplspawn run down\` first`,
      );
    return null;
  },
});
