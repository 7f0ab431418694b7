// Task: the lab's shares up on every host at once, by the cluster playbook that ships with aplspawn
// (ansible/cluster-up.yml: aplspawn run up there, the VXLAN between the hosts' bridges, each
// host's inventory and host keys fetched). Rollback, and `run down`, run ansible/cluster-down.yml
// with the same vars: every host's share down and its VXLAN gone, also after the control node
// crashed mid-up (the vars were written before).
import { z } from "zod";
import { clusterPlaybookEnv } from "../../src/cluster/hosts.js";
import type { ExecResult } from "../../src/host/host.js";
import { ansibleConfigEnv } from "../../src/lab/ansible-config.js";
import { execAsOwner, ownerSchema } from "../../src/lab/owner.js";
import { printable } from "../../src/runner/report.js";
import { defineTask, type TaskContext, unmet } from "../../src/runner/task.js";
import { failedTasks } from "../container/provision.js";
import { upKeepingGoing } from "./keep-going.js";

const paramsSchema = z.object({
  /** The cluster's inventory (cluster.inventory, absolute). */
  inventory: z.string(),
  /** The directory the shares task wrote (vars.json). */
  dir: z.string(),
  up: z.string(),
  down: z.string(),
  /** Who runs Ansible (their ssh access to the hosts); root without one. */
  owner: ownerSchema.optional(),
  /** run up --keep-going: a host that fails is taken down alone, the others stay up (keep-going.ts). */
  keepGoing: z.boolean().optional(),
  /** With keepGoing: ansible/cluster-prune.yml. */
  prune: z.string().optional(),
});
const resultSchema = z.object({ failed: z.array(z.object({ host: z.string(), why: z.string() })) });
export type ClusterHostsParams = z.infer<typeof paramsSchema>;

const HOUR = 3_600_000;

/** Run a playbook of the cluster's with the vars the shares task wrote (more: ansible-playbook's options). */
export async function runPlaybook(
  ctx: TaskContext,
  p: ClusterHostsParams,
  book: string,
  more: readonly string[] = [],
): Promise<ExecResult> {
  const args = ["-i", p.inventory, "-e", `@${p.dir}/vars.json`, ...more, book];
  const env = clusterPlaybookEnv(process.env);
  const onLine = (line: string) => {
    if (line.trim()) ctx.info(printable(line));
  };
  // An ansible.cfg another user could have written is never read: Ansible then runs without one.
  const config = p.owner
    ? await ansibleConfigEnv(ctx.host, p.owner, {
        env: process.env,
        empty: "/dev/null",
        warn: (m) => ctx.info(`warning: ${m}`),
      })
    : {};
  const r = p.owner
    ? await execAsOwner(ctx, p.owner, "ansible-playbook", args, {
        timeoutMs: 6 * HOUR,
        env: { ...env, ...config },
        onLine,
      })
    : await ctx.host.exec("ansible-playbook", args, {
        timeoutMs: 6 * HOUR,
        env,
        onLine,
        allowFail: true,
        signal: ctx.signal,
      });
  return r;
}

/** Run a playbook of the cluster's (runPlaybook); its failure names the tasks that failed. */
export async function playbook(
  ctx: TaskContext,
  p: ClusterHostsParams,
  book: string,
  more: readonly string[] = [],
): Promise<void> {
  const r = await runPlaybook(ctx, p, book, more);
  if (r.exitCode !== 0) {
    const failed = failedTasks(r.stdout);
    throw new Error(
      `${book} failed (exit ${r.exitCode})${failed.length ? `: ${failed.join("; ")}` : `: ${r.stderr.trim().split("\n").at(-1) ?? ""}`}`,
    );
  }
}

/** Runs the cluster playbook. */
export const clusterHosts = defineTask({
  kind: "cluster.hosts",
  journaled: { params: paramsSchema, result: resultSchema.optional() },
  title: () => "Bringing up each host's share and the overlay (ansible-playbook cluster-up.yml)",
  rollbackTitle: () => "Taking down each host's share and the overlay (ansible-playbook cluster-down.yml)",
  // The hosts' state is theirs to check: the playbook is idempotent, run at every up.
  check: async () => unmet("the hosts are checked by the playbook itself"),
  async run(ctx, p) {
    if (p.keepGoing && p.prune)
      return {
        failed: await upKeepingGoing(ctx, { ...p, prune: p.prune }, (book, more) =>
          runPlaybook(ctx, p, book, more),
        ),
      };
    await playbook(ctx, p, p.up);
    return { failed: [] };
  },
  async rollback(ctx, { params: p }) {
    // Each `run up` journals this task again (the playbook runs at every up): the newest entry's
    // rollback took every host down, then the split's went with the shares task's. An older entry
    // finds no vars.json: the hosts were taken down with the same vars already.
    if (!(await ctx.host.fs.exists(`${p.dir}/vars.json`))) {
      ctx.info(`${p.dir}/vars.json is gone: the hosts were taken down by a later up's entry`);
      return;
    }
    await playbook(ctx, p, p.down);
  },
});
