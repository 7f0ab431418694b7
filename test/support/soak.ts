// The soak of issue #29, shared by its test (test/reliability/soak.test.ts) and the bench
// (`node bench/run.mjs --parts soak --minutes N`): labs of 2 containers on one workdir and one
// image, in one namespace as jobs of a CI host are on one host, all started together, each doing
// rounds of up, reset of one container, provision of a small playbook and down --purge. One lab's
// `run up` is failed midway (APLSPAWN_FAIL_AFTER, after its last container is ready, while the
// others boot and provision beside it): it must roll back clean, leaving nothing of its own while
// the others run on, and go on with its rounds.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loopRecordPath } from "../../tasks/image/loop.js";
import { taskEvents } from "./json-events.js";
import { cgroupsOf, holdsUnder, type LabConfig, type NetLab, nspawnPids, propagateDirs } from "./lab.js";

/** The small playbook each round provisions: a file naming the host, in every container. */
const PLAYBOOK = `- hosts: aplspawned
  become: true
  gather_facts: false
  tasks:
    - name: a file naming the host
      ansible.builtin.copy:
        dest: /var/tmp/soak
        content: "{{ inventory_hostname }}\\n"
`;

/**
 * The soak's labs in the fixture's namespace, temp dir and workdir (one image store): the fixture's
 * own lab and n - 1 added, each of 2 containers with the playbook, on subnets subnet, subnet + 1, ….
 */
export async function soakLabs(lab: NetLab, n: number, subnet: number): Promise<LabConfig[]> {
  const playbook = await lab.file("soak.yml", PLAYBOOK);
  // Each lab its own iptables chain too (net.claim refuses two labs one chain).
  const base = (i: number) => ({
    network: { chain: `SOAK${i}` },
    containers: { count: 2 },
    provision: { playbook },
  });
  await lab.writeConfig(base(0));
  const labs: LabConfig[] = [lab];
  for (let i = 1; i < n; i++)
    labs.push(await lab.add(`${lab.name.replace(/\d+$/, "")}${i}`, subnet + i, base(i)));
  return labs;
}

/** A lab's first and last container (names are the prefix and the address's last octet, .10 on). */
export const soakContainers = (l: LabConfig) => [`${l.prefix}10`, `${l.prefix}11`] as const;

/** The task the faulted lab's `run up` fails after: its last container is ready. */
export const soakFault = (l: LabConfig) => `container.ready[${soakContainers(l)[1]}]`;

/** What of lab `l` is left while the others run in the same namespace (empty when nothing is). */
export async function leftOf(lab: NetLab, l: LabConfig): Promise<string[]> {
  const left: string[] = [];
  const labDir = join(lab.workdir, l.name);
  for (const p of await nspawnPids(l.machinesDir)) left.push(`systemd-nspawn ${p}`);
  left.push(...(await cgroupsOf(l.prefix)), ...(await propagateDirs(l.prefix)));
  const mounts = (await l.ns.run("findmnt", ["-rn", "-o", "TARGET"])).stdout.split("\n");
  left.push(...mounts.filter((m) => m.startsWith(`${labDir}/`) || m.startsWith(`${l.machinesDir}/`)));
  const bridge = `br-${l.name}`.slice(0, 15);
  if ((await l.ns.run("ip", ["link", "show", "dev", bridge])).exitCode === 0) left.push(`bridge ${bridge}`);
  const rules = (await l.ns.run("iptables-save", [])).stdout.split("\n").filter((x) => x.includes(bridge));
  left.push(...rules.map((x) => `iptables: ${x}`));
  if (existsSync(loopRecordPath(join(labDir, "lower")))) left.push("its loop record");
  left.push(...(await holdsUnder(labDir)));
  return left;
}

/** What a soak did. */
export interface SoakResult {
  /** Rounds every command of which succeeded. */
  rounds: number;
  /** Each failed command of a round, with its output. */
  failures: string[];
  /** What went wrong with the faulted run: not failing as injected, a failed rollback, residue. */
  faultProblems: string[];
}

const tail = (s: string, n = 25) => s.split("\n").slice(-n).join("\n");

/** `run up` of `l` failed after its last container is ready: what went wrong with its rollback. */
async function faultedUp(lab: NetLab, l: LabConfig): Promise<string[]> {
  const id = soakFault(l);
  const r = await l.cli(["--json", "run", "up"], { APLSPAWN_FAIL_AFTER: id });
  const problems: string[] = [];
  const out = `\nstdout:\n${tail(r.stdout)}\nstderr:\n${tail(r.stderr)}`;
  if (r.exitCode !== 1)
    problems.push(`${l.name}: up with a fault after ${id} exited ${r.exitCode}, not 1${out}`);
  else if (!r.stderr.includes(`injected failure after ${id}`))
    problems.push(`${l.name}: up failed, but not by the fault after ${id}${out}`);
  const failedUndo = taskEvents(r).filter((e) => e.state === "rollback-failed");
  if (failedUndo.length > 0)
    problems.push(`${l.name}: rollback failed: ${failedUndo.map((e) => e.id).join(", ")}${out}`);
  const left = await leftOf(lab, l);
  if (left.length > 0) problems.push(`${l.name}: after the faulted up, left: ${left.join("; ")}`);
  return problems;
}

/**
 * Run the soak: every lab at once, `rounds` rounds each, or rounds until `until` (ms since the
 * epoch) has passed; lab `fault.lab`'s round `fault.round` starts with the faulted up.
 */
export async function soak(
  lab: NetLab,
  labs: readonly LabConfig[],
  o: { rounds?: number; until?: number; fault: { lab: number; round: number } },
): Promise<SoakResult> {
  const res: SoakResult = { rounds: 0, failures: [], faultProblems: [] };
  const more = (round: number) => (o.rounds !== undefined ? round <= o.rounds : Date.now() < (o.until ?? 0));
  await Promise.all(
    labs.map(async (l, i) => {
      for (let round = 1; more(round); round++) {
        if (i === o.fault.lab && round === o.fault.round)
          res.faultProblems.push(...(await faultedUp(lab, l)));
        const failed: string[] = [];
        const run = async (...args: string[]) => {
          const r = await l.cli(args);
          if (r.exitCode !== 0)
            failed.push(
              `${l.name}, round ${round}: ${args.join(" ")} exited ${r.exitCode}\nstdout:\n${tail(r.stdout)}\nstderr:\n${tail(r.stderr)}`,
            );
          return r.exitCode === 0;
        };
        if (await run("run", "up")) {
          // The probe the faulted lab is judged by sees a lab that is up (it is no empty check).
          if ((await leftOf(lab, l)).length === 0)
            failed.push(`${l.name}, round ${round}: leftOf finds nothing of the lab while it is up`);
          await run("run", "reset", "--only", soakContainers(l)[0]);
          await run("run", "provision");
        }
        await run("run", "down", "--purge");
        res.failures.push(...failed);
        if (failed.length === 0) res.rounds++;
      }
    }),
  );
  return res;
}
