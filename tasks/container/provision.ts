// The playbook under test, run against the lab with its inventory (as the lab's owner when it has
// one), its output streamed under the task. With idempotence, a second run must change nothing, as
// Molecule checks it: what changed the second time is named. It creates nothing aplspawn would
// undo: a failure fails the command and leaves the lab as the playbook left it.
import { lastLines } from "../../src/host/host.js";
import { ansibleConfigEnv } from "../../src/lab/ansible-config.js";
import { execAsOwner, type Owner } from "../../src/lab/owner.js";
import { printable } from "../../src/runner/report.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Parameters. */
export interface ProvisionParams {
  playbook: string;
  inventory: string;
  args: string[];
  idempotence: boolean;
  /** Who Ansible runs as: the lab's owner, or the unprivileged account of a lab without one (never root). */
  owner: Owner;
  /** That account's empty ansible.cfg (config/paths.ts ownerFiles), read instead of one it must not trust. */
  emptyConfig: string;
  /**
   * One pass alone (`aplspawn test` times its steps apart, and destroys the lab itself): "once"
   * runs the playbook once, "idempotence" runs it once and fails on any change. Unset: the
   * playbook, then idempotence if asked, and a failure leaves the lab up.
   */
  pass?: "once" | "idempotence";
}

const HOUR = 3_600_000;

async function playbook(ctx: TaskContext, p: ProvisionParams, pass: string) {
  const args = ["-i", p.inventory, ...p.args, p.playbook];
  const config = await ansibleConfigEnv(ctx.host, p.owner, {
    env: process.env,
    empty: p.emptyConfig,
    warn: (m) => ctx.info(`warning: ${m}`),
  });
  return execAsOwner(ctx, p.owner, "ansible-playbook", args, {
    timeoutMs: 6 * HOUR,
    // The output is parsed (what changed, the recap): the default callback's shape, whatever
    // stdout_callback an ansible.cfg or the environment names (minimal prints no recap).
    env: { ANSIBLE_NOCOLOR: "1", ANSIBLE_FORCE_COLOR: "0", ANSIBLE_STDOUT_CALLBACK: "default", ...config },
    onLine: (line: string) => {
      if (line.trim()) ctx.info(`${pass}${printable(line)}`);
    },
  });
}

/**
 * What a run changed, from its output: "TASK [name] on host" for each `changed: [host]` line, and
 * the recap's changed= counts.
 */
export function changedTasks(output: string): { tasks: string[]; changed: number; recap: boolean } {
  const tasks: string[] = [];
  let task = "";
  let changed = 0;
  let recap = false;
  for (const line of output.split("\n")) {
    if (/^PLAY RECAP\b/.test(line)) recap = true;
    const t = /^TASK \[(.*)\]/.exec(line);
    if (t) task = t[1] ?? "";
    const c = /^changed: \[([^\]]+)\]/.exec(line);
    if (c) tasks.push(`${task} on ${c[1]}`);
    const counts = /\bchanged=(\d+)\b/.exec(line);
    if (counts && /\bok=\d+/.test(line)) changed += Number(counts[1]);
  }
  return { tasks, changed, recap };
}

/**
 * What failed in a run, from its output: "TASK [name] failed on host: message" for each
 * `fatal: [host]: FAILED! => …` (or UNREACHABLE, or `failed: [host] (item=…)`) line.
 */
export function failedTasks(output: string): string[] {
  const out: string[] = [];
  let task = "";
  const lines = output.split("\n");
  for (const [i, line] of lines.entries()) {
    const t = /^TASK \[(.*)\]/.exec(line);
    if (t) task = t[1] ?? "";
    const f = /^(?:fatal|failed): \[([^\]]+)\](?: \(item=.*?\))?(?:: (FAILED|UNREACHABLE)!)? => (.*)$/.exec(
      line,
    );
    if (!f) continue;
    // The result is JSON on the line, or indented over the next ones up to a closing "}".
    let json = f[3] ?? "";
    if (json.trim() === "{") {
      const end = lines.findIndex((l, k) => k > i && /^}/.test(l));
      if (end > i)
        json = lines
          .slice(i, end + 1)
          .join("\n")
          .replace(/^.*?=> /, "");
    }
    let msg = "";
    try {
      const r = JSON.parse(json) as { msg?: unknown };
      if (typeof r.msg === "string") msg = r.msg;
    } catch {}
    const how = f[2] === "UNREACHABLE" ? "unreachable" : "failed";
    out.push(`TASK [${task}] ${how} on ${f[1]}${msg ? `: ${msg}` : ""}`);
  }
  return out;
}

/** Why a run failed: the failing tasks and hosts when the output names them, else its last lines. */
const failure = (r: { stdout: string; stderr: string }, lines: number) => {
  const named = failedTasks(r.stdout);
  return printable(named.length ? named.join("; ") : lastLines(`${r.stdout}\n${r.stderr}`, lines));
};

/** Runs the playbook (twice with idempotence). */
export const labProvision = defineTask<ProvisionParams, null>({
  kind: "lab.provision",
  title: (p) =>
    p.pass === "idempotence"
      ? `Running ansible-playbook ${p.playbook} again: it must change nothing (idempotence) as ${p.owner.name}`
      : `Running ansible-playbook ${p.playbook}${p.idempotence && !p.pass ? " twice (idempotence)" : ""} as ${p.owner.name}`,
  async check() {
    return false;
  },
  async run(ctx, p) {
    if (p.pass !== "idempotence") {
      const first = await playbook(ctx, p, "");
      if (first.exitCode !== 0)
        throw new Error(
          `ansible-playbook ${p.playbook} failed (exit code ${first.exitCode})${p.pass ? "" : "; the lab stays up"}: ${failure(first, 6)}`,
        );
      if (!p.idempotence || p.pass === "once") return null;
    }
    const second = await playbook(ctx, p, "idempotence: ");
    if (second.exitCode !== 0)
      throw new Error(
        `ansible-playbook ${p.playbook} failed on its second run (exit code ${second.exitCode}): ${failure(second, 4)}`,
      );
    const { tasks, changed, recap } = changedTasks(second.stdout);
    // Never a pass by default: output without a recap was not read, so nothing is known of changes.
    if (!recap)
      throw new Error(
        `ansible-playbook ${p.playbook}: its second run printed no PLAY RECAP, so whether it changed anything is unknown: ${printable(lastLines(`${second.stdout}\n${second.stderr}`, 4))}`,
      );
    if (changed > 0)
      throw new Error(
        `ansible-playbook ${p.playbook} is not idempotent: its second run changed ${changed}: ${printable(tasks.join("; ") || "see the recap above")}`,
      );
    return null;
  },
});
