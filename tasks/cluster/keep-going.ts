// `run up --keep-going` of a lab across hosts, as the cluster.hosts task runs it: the up playbook
// on every host; when some hosts fail, those (named, with why) are taken down alone
// (cluster-down.yml, --limit), the up playbook runs again among the hosts that stay (it is
// idempotent: it finishes what the failure stopped), their VXLANs drop the failed hosts as peers
// (cluster-prune.yml), and plan.json keeps only their containers, so the one inventory has only
// what is up. vars.json still names every host: `run down` runs cluster-down on all of them (a
// host that holds nothing is left alone). No host left, or a failure among those that stay: an
// error, and the task's rollback takes down every host.
import {
  clusterPlanFileSchema,
  clusterVarsSchema,
  playFailures,
  upAnswerFile,
} from "../../src/cluster/report.js";
import type { ExecResult } from "../../src/host/host.js";
import { type Owner, ownerFs } from "../../src/lab/owner.js";
import type { TaskContext } from "../../src/runner/task.js";

/** A host that failed, and why. */
export interface FailedHost {
  host: string;
  why: string;
}

/** The playbooks and where the split is; play runs one with more ansible-playbook options. */
export async function upKeepingGoing(
  ctx: TaskContext,
  p: { dir: string; up: string; down: string; prune: string; owner?: Owner },
  play: (book: string, more: readonly string[]) => Promise<ExecResult>,
): Promise<FailedHost[]> {
  const first = await play(p.up, []);
  if (first.exitCode === 0) return [];
  const fs = ownerFs(ctx, p.owner);
  const read = async (f: string) => {
    const t = await fs.read(`${p.dir}/${f}`);
    if (t === undefined) throw new Error(`${p.dir}/${f} cannot be read: the split was not written`);
    return JSON.parse(t) as unknown;
  };
  const vars = clusterVarsSchema.parse(await read("vars.json"));
  const failures = playFailures(first.stdout);
  const failed = vars.aplspawn_targets
    .filter((h) => failures.has(h))
    .map((host) => ({ host, why: failures.get(host)?.why ?? "failed" }));
  const stay = vars.aplspawn_targets.filter((h) => !failures.has(h));
  const said = failed.map((f) => `${f.host}: ${f.why}`).join("; ");
  if (failed.length === 0)
    throw new Error(`${p.up} failed (exit ${first.exitCode}) and names no host that failed`);
  if (stay.length === 0) throw new Error(`every host failed: ${said}`);
  for (const f of failed)
    ctx.info(`warning: host ${f.host} failed: ${f.why}; its share is taken down, the lab goes on without it`);
  const down = await play(p.down, ["--limit", failed.map((f) => f.host).join(",")]);
  if (down.exitCode !== 0)
    ctx.info(
      `warning: taking down the share of ${failed.map((f) => f.host).join(", ")} failed (exit ${down.exitCode}): \`run down\` tries again`,
    );
  // What the failed hosts gave the control node goes: their containers' host keys and inventory.
  await fs.rm(
    ...failed.flatMap((f) => [
      `${p.dir}/known_hosts.d/${f.host}`,
      `${p.dir}/inventories/${f.host}.ini`,
      `${p.dir}/${upAnswerFile(f.host)}`,
    ]),
  );
  const among = {
    aplspawn_targets: stay,
    aplspawn_peers: Object.fromEntries(stay.map((h) => [h, vars.aplspawn_peers[h] ?? ""])),
  };
  const again = await play(p.up, ["-e", JSON.stringify(among)]);
  if (again.exitCode !== 0)
    throw new Error(
      `${p.up} failed again among the hosts that stay (${stay.join(", ")}) after ${said}: ${playFailures(again.stdout).size} more failed`,
    );
  const gone = failed.map((f) => vars.aplspawn_peers[f.host]).filter((a): a is string => Boolean(a));
  const prune = await play(p.prune, ["-e", JSON.stringify({ ...among, aplspawn_gone: gone })]);
  if (prune.exitCode !== 0) throw new Error(`${p.prune} failed (exit ${prune.exitCode})`);
  const plan = clusterPlanFileSchema.parse(await read("plan.json"));
  const keep = plan.hosts.filter((k) => k.host === undefined || stay.includes(k.host));
  await fs.write(`${p.dir}/plan.json`, `${JSON.stringify({ hosts: keep }, null, 2)}\n`, 0o600);
  return failed;
}
