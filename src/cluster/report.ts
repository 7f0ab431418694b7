// What the control node knows of a lab across hosts once it is up, and what each host says of its
// share: the files `run up` wrote on the control node (vars.json for the cluster playbooks,
// plan.json for the one inventory) and each host's answer to ansible/cluster-status.yml (its own
// aplspawn's `status --json` or `pids --json`), or why a host gave none. Pure: the CLI runs the
// playbook and reads the files.
import { z } from "zod";

/** vars.json, as far as the report commands read it. */
export const clusterVarsSchema = z.object({
  aplspawn_targets: z.array(z.string()),
  aplspawn_peers: z.record(z.string(), z.string()),
  aplspawn_share_dir: z.string(),
});
export type ClusterVars = z.infer<typeof clusterVarsSchema>;

/** plan.json: each container, its host (written since the report commands), its ProxyCommand. */
export const clusterPlanFileSchema = z.object({
  hosts: z.array(
    z.object({
      name: z.string(),
      ip: z.string(),
      user: z.string(),
      host: z.string().optional(),
      /** The container's set (containers.sets), when it is in one. */
      set: z.string().optional(),
      proxy: z.string().optional(),
    }),
  ),
});
export type PlanContainer = z.infer<typeof clusterPlanFileSchema>["hosts"][number];

/** A host's share as the control node recorded it. */
export interface ShareView {
  host: string;
  address: string;
  containers: PlanContainer[];
}

/**
 * The shares, in the order of the playbook's targets; containers of no known host are left out, and
 * so are hosts that hold none (those `run up --keep-going` took down), unless plan.json names no
 * host at all (written before it did).
 */
export function sharesOf(vars: ClusterVars, plan: readonly PlanContainer[]): ShareView[] {
  const shares = vars.aplspawn_targets.map((host) => ({
    host,
    address: vars.aplspawn_peers[host] ?? "",
    containers: plan.filter((k) => k.host === host),
  }));
  return plan.some((k) => k.host !== undefined) ? shares.filter((s) => s.containers.length > 0) : shares;
}

/** What a host answered (its aplspawn's exit code and output), as the playbook wrote it. */
const answerSchema = z.object({
  rc: z.number(),
  stdout: z.string(),
  stderr: z.string(),
  msg: z.string().optional(),
});

/** One host's part of a report. */
export interface HostReport extends ShareView {
  /** Whether its aplspawn answered (with JSON). */
  answered: boolean;
  /** Why it did not: unreachable, aplspawn missing or failing there. */
  error?: string;
  /** Its aplspawn's exit code and the JSON it printed (the last line that parses). */
  rc?: number;
  output?: unknown;
}

/**
 * The hosts a play failed on, each with why, from ansible-playbook's lines "fatal: [HOST]: FAILED!
 * => {…}" and "… UNREACHABLE! => {…}" (the first per host): Ansible's msg, or for a command that
 * exited non-zero the last line of its stderr.
 */
export function playFailures(stdout: string): Map<string, { unreachable: boolean; why: string }> {
  const out = new Map<string, { unreachable: boolean; why: string }>();
  for (const m of stdout.matchAll(/^fatal: \[([^\]]+)\]: (FAILED|UNREACHABLE)! => (\{.*\})\s*$/gm)) {
    const host = m[1] ?? "";
    if (out.has(host)) continue;
    const unreachable = m[2] === "UNREACHABLE";
    let why = unreachable ? "unreachable" : "failed";
    try {
      const j = JSON.parse(m[3] ?? "") as { msg?: unknown; stderr?: unknown; rc?: unknown };
      const err = typeof j.stderr === "string" ? lastLine(j.stderr) : "";
      const msg = typeof j.msg === "string" ? j.msg.trim() : "";
      why = (msg === "non-zero return code" && err ? `${err} (exit ${String(j.rc)})` : msg || err) || why;
    } catch {
      // Not JSON: the host still failed; Ansible's own words are not kept.
    }
    out.set(host, { unreachable, why });
  }
  return out;
}

/** Hosts ansible-playbook could not reach, with Ansible's reason. */
export function unreachableOf(stdout: string): Map<string, string> {
  return new Map(
    [...playFailures(stdout)].filter(([, f]) => f.unreachable).map(([h, f]) => [h, f.why] as const),
  );
}

const lastLine = (s: string) =>
  s
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

/** The last line of a command's output that parses as JSON. */
function lastJson(stdout: string): unknown {
  for (const line of stdout.trim().split("\n").reverse()) {
    try {
      return JSON.parse(line);
    } catch {
      // A line of something else (a warning): the one before may be the report.
    }
  }
  return undefined;
}

/**
 * Each share with its host's answer: the file the playbook wrote for it (undefined when it wrote
 * none), else why (Ansible's unreachable message, else the play's last words).
 */
export function hostReports(
  shares: readonly ShareView[],
  files: ReadonlyMap<string, string | undefined>,
  play: { exitCode: number; stdout: string; stderr: string },
): HostReport[] {
  const unreachable = unreachableOf(play.stdout);
  return shares.map((s): HostReport => {
    const text = files.get(s.host);
    if (text === undefined) {
      const why = unreachable.get(s.host);
      const failed = lastLine(play.stderr) || lastLine(play.stdout) || `exit ${play.exitCode}`;
      return { ...s, answered: false, error: why ? `unreachable: ${why}` : `no answer: ${failed}` };
    }
    let a: z.infer<typeof answerSchema>;
    try {
      a = answerSchema.parse(JSON.parse(text));
    } catch {
      return { ...s, answered: false, error: "its answer does not read as the playbook writes it" };
    }
    const output = lastJson(a.stdout);
    if (output === undefined)
      return {
        ...s,
        answered: false,
        rc: a.rc,
        error: `aplspawn there printed no report (exit ${a.rc}): ${lastLine(a.stderr) || a.msg || "no output"}`,
      };
    return { ...s, answered: true, rc: a.rc, output };
  });
}

const pidsSchema = z.array(z.object({ name: z.string(), leaderPid: z.number().optional() }));

/** A container's state on its host: running, stopped, or unknown (its host gave no answer). */
export type RemoteState = "running" | "stopped" | "unknown";

/** Each container of the shares with its state, from the hosts' `pids --json`. */
export function containerStatesOf(
  reports: readonly HostReport[],
): { name: string; ip: string; host: string; state: RemoteState }[] {
  return reports.flatMap((r) => {
    const parsed = r.answered ? pidsSchema.safeParse(r.output) : undefined;
    const running = new Set(
      parsed?.success ? parsed.data.filter((p) => p.leaderPid !== undefined).map((p) => p.name) : [],
    );
    return r.containers.map((k) => ({
      name: k.name,
      ip: k.ip,
      host: r.host,
      state: parsed?.success ? (running.has(k.name) ? "running" : "stopped") : "unknown",
    }));
  });
}

/** Where the up playbook keeps a host's `run up --json` answer, in the split's directory. */
export const upAnswerFile = (host: string) => `answer-${host}.jsonl`;

const labEventSchema = z.object({
  event: z.literal("lab"),
  containers: z.array(z.object({ name: z.string(), state: z.enum(["running", "stopped"]) })),
});

/**
 * The containers' states as a host's own `run up --json` ended (its last JSON line: the `event: lab`
 * table of its share), or undefined when that line does not read as one.
 */
export function upAnswerStates(answer: string): Map<string, "running" | "stopped"> | undefined {
  const p = labEventSchema.safeParse(lastJson(answer));
  return p.success ? new Map(p.data.containers.map((c) => [c.name, c.state])) : undefined;
}

const statusSchema = z.object({
  ok: z.boolean(),
  state: z.string().optional(),
  checks: z.array(
    z.object({ name: z.string(), target: z.string(), ok: z.boolean(), detail: z.string().optional() }),
  ),
});
/** A host's `status --json`. */
export type HostStatus = z.infer<typeof statusSchema>;

/** A host's status answer, or why there is none. */
export function statusOf(r: HostReport): HostStatus | { error: string } {
  if (!r.answered) return { error: r.error ?? "no answer" };
  const p = statusSchema.safeParse(r.output);
  return p.success ? p.data : { error: "its aplspawn's status does not read as status --json prints it" };
}
