// What `aplspawn status` looks at that no task of up checks, in the original tool's words: the lab's
// working directories and, per container, its leader process, the host key it serves and an ssh
// login. (Its nspawn process and overlay mount are up's own checks: workflows/status.ts.) Read-only.
import { bindText, limitsText, memoryBytes } from "../../config/binds.js";
import { type ContainerSpec, containerSpecs } from "../../config/containers.js";
import { knownHostsPath, labDir, mergedDir, sshKeyPath } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { type ExecResult, lastLines } from "../../src/host/host.js";
import { cmdline } from "../../src/host/proc.js";
import { bindArg } from "../../src/lab/binds.js";
import { controlPathDir } from "../../src/lab/inventory.js";
import { limitsOf } from "../../src/lab/limits.js";
import { machinedAnswers, machineOf } from "../../src/lab/machined.js";
import { findNspawnWhere, isNspawnFor, type NspawnProcess } from "../../src/lab/nspawn-procs.js";
import { type SshTarget, sshBatchArgs } from "../../src/lab/ssh.js";
import type { Probe, ProbeContext } from "../../src/runner/probe.js";
import { printable } from "../../src/runner/report.js";

/**
 * What one status run looks at, read once for all its containers: the systemd-nspawn processes
 * (each container's checks scanning /proc again cost 50 containers a scan apiece).
 */
function snapshot() {
  let procs: Promise<NspawnProcess[]> | undefined;
  return {
    async running(ctx: ProbeContext, name: string, merged: string) {
      procs ??= findNspawnWhere(ctx, () => true);
      return (await procs).find((n) => n.leader !== undefined && isNspawnFor(n.argv, name, merged));
    },
  };
}
type Snapshot = ReturnType<typeof snapshot>;

/**
 * The socket of the ssh master that status keeps to a container, in the lab's directory of ssh
 * masters (made with the inventory, removed with its masters by `run down`); none without that
 * directory. Named by the container's nspawn process and its start time: a container restarted
 * since gets a new master, never one whose connection went with the old container (that one sits
 * idle and exits after ControlPersist).
 */
async function statusMaster(
  ctx: ProbeContext,
  seen: Snapshot,
  c: Config,
  name: string,
  merged: string,
): Promise<string | undefined> {
  const dir = controlPathDir(labDir(c));
  const n = await seen.running(ctx, name, merged);
  if (!n || !(await ctx.host.fs.exists(dir))) return undefined;
  return `${dir}/st-${n.pid}-${n.start}`;
}

/** A container as status looks at it: its spec, merged root and the run's snapshot. */
interface Seen {
  c: Config;
  s: ContainerSpec;
  merged: string;
  seen: Snapshot;
}

const ssh = (ctx: ProbeContext, args: string[]) =>
  ctx.host.exec("ssh", args, { allowFail: true, readOnly: true, timeoutMs: 20_000, signal: ctx.signal });

/**
 * The ssh of one container's status, each done once per status run: how to reach it (and whether
 * a master from an earlier status is kept), one login (as the user, then sudo) over that master,
 * and the host key it serves now. A login that opens its own connection checks the key on the way
 * (StrictHostKeyChecking=yes, before authenticating); one over a kept master does not (the key was
 * checked when the master logged in, and sshd may have been restarted with another key since):
 * then a connection of its own checks it and stops before logging in.
 */
function sshOf({ c, s, merged, seen }: Seen) {
  let reach: Promise<{ target: SshTarget; kept: boolean }> | undefined;
  let attempt: Promise<ExecResult> | undefined;
  let keyCheck: Promise<ExecResult> | undefined;
  const connection = (ctx: ProbeContext) => {
    reach ??= (async () => {
      const controlPath = await statusMaster(ctx, seen, c, s.name, merged);
      const target = {
        ip: s.ip,
        user: s.user,
        key: sshKeyPath(c),
        knownHosts: knownHostsPath(c),
        controlPath,
      };
      return { target, kept: controlPath !== undefined && (await ctx.host.fs.exists(controlPath)) };
    })();
    return reach;
  };
  const login = (ctx: ProbeContext) => {
    attempt ??= connection(ctx).then(({ target }) =>
      ssh(ctx, sshBatchArgs(target, ["sudo", "-n", "true"], 3)),
    );
    return attempt;
  };
  const hostKey = (ctx: ProbeContext) => {
    keyCheck ??= connection(ctx).then(({ target, kept }) =>
      kept
        ? ssh(ctx, [
            "-o",
            "PreferredAuthentications=none",
            ...sshBatchArgs({ ...target, controlPath: undefined }, ["true"], 3),
          ])
        : login(ctx),
    );
    return keyCheck;
  };
  return { login, hostKey };
}

/** The container's leader (PID 1 inside) and, where machined answers, machined's record of it. */
const leaderProbe = ({ s, merged, seen }: Seen): Probe => ({
  name: "Checking leader process",
  target: s.name,
  async run(ctx) {
    const n = await seen.running(ctx, s.name, merged);
    if (!n?.leader) return { ok: false, detail: "no leader process" };
    if (await machinedAnswers(ctx)) {
      const m = await machineOf(ctx, s.name);
      if (!m) return { ok: false, detail: `machinectl does not know ${s.name}` };
      if (m.leader !== n.leader || m.root !== merged)
        return {
          ok: false,
          detail: `machined's ${s.name} is leader PID ${m.leader} from ${m.root}, not PID ${n.leader} from ${merged}`,
        };
    }
    const argv = await cmdline(ctx.host, n.leader);
    return { ok: argv !== undefined, detail: `PID ${n.leader}: ${printable((argv ?? []).join(" "))}` };
  },
});

/**
 * What the container was given of the host (config/binds.ts): its binds, as its running nspawn
 * has them, and the limits its cgroups hold (src/lab/limits.ts), each against the config.
 */
const bindsLimitsProbe = ({ s, merged, seen }: Seen): Probe => ({
  name: `Checking binds and limits: ${[...s.binds.map(bindText), limitsText(s)].filter(Boolean).join(", ")}`,
  target: s.name,
  async run(ctx) {
    const n = await seen.running(ctx, s.name, merged);
    if (!n?.leader) return { ok: false, detail: "not running" };
    const problems = s.binds
      .filter((b) => !n.argv.includes(bindArg(b)))
      .map((b) => `not bound: ${bindText(b)}`);
    const l = await limitsOf(ctx.host, n.leader);
    const memory = s.memory === undefined ? undefined : memoryBytes(s.memory);
    if (
      (memory !== undefined && !(l.memory !== undefined && l.memory <= memory)) ||
      (s.cpus !== undefined && !(l.cpus !== undefined && l.cpus <= s.cpus + 1e-9))
    )
      problems.push(
        `its cgroups hold ${[l.memory === undefined ? "no memory limit" : `memory ${l.memory} bytes`, l.cpus === undefined ? "no CPU quota" : `cpus ${l.cpus}`].join(", ")}`,
      );
    return problems.length ? { ok: false, detail: problems.join("; ") } : { ok: true };
  },
});

/** The container's host key, then an ssh login with sudo. */
function sshProbes(x: Seen): Probe[] {
  const { s } = x;
  const { login, hostKey } = sshOf(x);
  const failed = (r: ExecResult) => ({
    ok: false,
    detail: lastLines(r.stderr, 1) || `ssh exit code ${r.exitCode}`,
  });
  return [
    {
      name: `Checking ${s.ip} answers with its pinned host key`,
      target: s.name,
      async run(ctx) {
        const r = await hostKey(ctx);
        if (r.exitCode === 0) return { ok: true };
        if (/Host key verification failed|IDENTIFICATION HAS CHANGED/.test(r.stderr))
          return { ok: false, detail: "its host key is not the one in known_hosts" };
        if (/Connection refused|timed out|No route to host|Connection closed|reset by peer/.test(r.stderr))
          return { ok: false, detail: `${s.ip} does not answer on port 22` };
        // Refused at login, after the host key was accepted.
        return /Permission denied|sudo/.test(r.stderr) ? { ok: true } : failed(r);
      },
    },
    {
      name: `Checking ssh connection to ${s.ip}`,
      target: s.name,
      async run(ctx) {
        const r = await login(ctx);
        return r.exitCode === 0 ? { ok: true, detail: `${s.user}@${s.ip}, sudo works` } : failed(r);
      },
    },
  ];
}

/** The status-only checks: the lab's (its directories), and each container's by name. */
export const containerProbes = (c: Config): { lab: Probe; of(name: string): Probe[] } => {
  const seen = snapshot();
  const specs = new Map(containerSpecs(c).map((s) => [s.name, s]));
  return {
    lab: {
      name: "Checking if working directories exist",
      target: labDir(c),
      async run(ctx) {
        const missing: string[] = [];
        for (const d of [labDir(c), c.containers.machinesDir])
          if (!(await ctx.host.fs.stat(d))?.isDirectory) missing.push(d);
        return missing.length ? { ok: false, detail: `missing: ${missing.join(", ")}` } : { ok: true };
      },
    },
    of(name): Probe[] {
      const s = specs.get(name);
      if (!s) return [];
      const x: Seen = { c, s, merged: mergedDir(c, s.name), seen };
      const given = s.binds.length > 0 || limitsText(s) !== "";
      return [leaderProbe(x), ...(given ? [bindsLimitsProbe(x)] : []), ...sshProbes(x)];
    },
  };
};

/**
 * What a user other than root can check of the lab: an ssh login to each container with their own
 * copies of the key and known_hosts (config/paths.ts ownerFiles). The rest needs root.
 */
export function loginProbes(c: Config, files: { key: string; knownHosts: string }): Probe[] {
  return containerSpecs(c).map((s) => ({
    name: `Checking ssh connection to ${s.ip}`,
    target: s.name,
    async run(ctx: ProbeContext) {
      const r = await ssh(
        ctx,
        sshBatchArgs({ ip: s.ip, user: s.user, key: files.key, knownHosts: files.knownHosts }, ["true"], 3),
      );
      return r.exitCode === 0
        ? { ok: true, detail: "" }
        : { ok: false, detail: lastLines(r.stderr, 1) || `ssh exit code ${r.exitCode}` };
    },
  }));
}
