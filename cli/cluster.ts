// The report and access commands of a lab across hosts, from the control node: which host holds
// which container and its state there as that host's aplspawn reports it (through Ansible:
// ansible/cluster-status.yml), ssh into a container through its host (the one inventory's
// ProxyCommand and pinned host keys), a command in a container by its host's `aplspawn exec`.
// Ansible and ssh to the hosts run as the one who brought the lab up (its owner, else root), or as
// the user running this, with their own copies.
import { homedir } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ClusterHost } from "../config/cluster.js";
import { labDir, ownerFiles } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { clusterHosts, clusterPlaybookEnv, hostSsh, hostsOfList } from "../src/cluster/hosts.js";
import {
  type ClusterVars,
  clusterPlanFileSchema,
  clusterVarsSchema,
  type HostReport,
  hostReports,
  type PlanContainer,
  type RemoteState,
  type ShareView,
  sharesOf,
  upAnswerFile,
  upAnswerStates,
} from "../src/cluster/report.js";
import { ExitError } from "../src/errors.js";
import type { HostContext } from "../src/host/host.js";
import { shellQuote } from "../src/host/host.js";
import { ansibleConfigEnv } from "../src/lab/ansible-config.js";
import { execAsOwner, type Owner, ownerFs } from "../src/lab/owner.js";
import { pinnedOptions } from "../src/lab/ssh.js";
import { Journal, journalPath, recordOf } from "../src/runner/journal.js";
import { clusterHosts as clusterHostsTask } from "../tasks/cluster/hosts.js";
import type { FailedHost } from "../tasks/cluster/keep-going.js";
import { clusterShares } from "../tasks/cluster/shares.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliContext } from "./context.js";

/** What the control node holds of a lab across hosts that is up. */
export interface ClusterView {
  /** The directory `run up` wrote the split in (the owner's, or the lab's). */
  dir: string;
  /** Who Ansible and ssh to the hosts run as (root running this for a lab with an owner). */
  owner?: Owner;
  /** The cluster's inventory (absolute). */
  inventory: string;
  vars: ClusterVars;
  containers: PlanContainer[];
  shares: ShareView[];
}

const ctxOf = (cli: CliContext): HostContext => ({ host: cli.io.host, signal: new AbortController().signal });

/**
 * The lab's split as its last up wrote it: as root, where the journal's cluster.shares entry says
 * (undefined when the journal has none: the lab is down); as anyone else, their own copy, which
 * `sudo aplspawn run up` gave them (an ExitError saying so when they have none).
 */
export async function clusterView(cli: CliContext, l: LoadedConfig): Promise<ClusterView | undefined> {
  const c = l.config;
  const host = cli.io.host;
  let dir: string;
  let owner: Owner | undefined;
  let inventory = resolve(c.cluster?.inventory ?? "");
  if (host.uid() === 0) {
    const journal = await Journal.open(host, journalPath(labDir(c)), c.lab, false);
    const e = journal
      .entries()
      .filter((x) => x.kind === "cluster.shares")
      .at(-1);
    if (!e || !clusterShares.journaled) return undefined;
    const p = recordOf(e, clusterShares.journaled).params;
    dir = p.dir;
    owner = p.owner;
    inventory = p.config.cluster?.inventory ?? inventory;
  } else dir = `${ownerFiles(c, homedir()).dir}/cluster`;
  const fs = ownerFs(ctxOf(cli), owner);
  const [vars, plan] = await Promise.all([fs.read(`${dir}/vars.json`), fs.read(`${dir}/plan.json`)]);
  if (vars === undefined || plan === undefined) {
    if (host.uid() === 0) return undefined;
    throw new ExitError(
      `you have no copy of lab ${c.lab}'s split (${dir}): the lab is down, or was brought up without sudo from your account; or use sudo`,
    );
  }
  const v = clusterVarsSchema.parse(JSON.parse(vars));
  const containers = clusterPlanFileSchema.parse(JSON.parse(plan)).hosts;
  return {
    dir,
    ...(owner ? { owner } : {}),
    inventory,
    vars: v,
    containers,
    shares: sharesOf(v, containers),
  };
}

/** The hosts the last `run up --keep-going` left out, as the journal's cluster.hosts entry says. */
export async function failedHosts(cli: CliContext, c: Config): Promise<FailedHost[]> {
  const journal = await Journal.open(cli.io.host, journalPath(labDir(c)), c.lab, false);
  const e = journal
    .entries()
    .filter((x) => x.kind === "cluster.hosts")
    .at(-1);
  if (!e || !clusterHostsTask.journaled) return [];
  return recordOf(e, clusterHostsTask.journaled).result?.failed ?? [];
}

/** The view, or an ExitError saying the lab is down. */
export async function upClusterView(cli: CliContext, l: LoadedConfig): Promise<ClusterView> {
  const v = await clusterView(cli, l);
  if (!v)
    throw new ExitError(
      `lab ${l.config.lab} is down: its journal records no split over hosts; bring it up with \`${cli.upCommand(l)}\``,
    );
  return v;
}

const packaged = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

/** Run ansible-playbook (or ssh) as the view's owner, else as whoever runs this. */
async function asViewer(
  cli: CliContext,
  v: ClusterView,
  cmd: string,
  args: readonly string[],
  env: Record<string, string>,
) {
  const ctx = ctxOf(cli);
  if (!v.owner)
    return cli.io.host.exec(cmd, args, { env, allowFail: true, readOnly: true, timeoutMs: 600_000 });
  // An ansible.cfg another user could have written is never read: Ansible then runs without one.
  const config = await ansibleConfigEnv(cli.io.host, v.owner, {
    env: process.env,
    empty: "/dev/null",
    warn: (m) => cli.io.err(`aplspawn: warning: ${m}\n`),
  });
  return execAsOwner(ctx, v.owner, cmd, args, {
    env: { ...env, ...config },
    readOnly: true,
    timeoutMs: 600_000,
  });
}

/**
 * The lab's containers with their states as each host's `run up` answered them (the up playbook
 * keeps each host's `--json` answer beside the split): undefined when a host's answer is missing or
 * names no lab table, and the hosts are then asked (askHosts). Only the split's own containers are
 * taken from an answer, each on its own host.
 */
export async function upAnswers(
  cli: CliContext,
  v: ClusterView,
): Promise<{ name: string; ip: string; host: string; state: RemoteState }[] | undefined> {
  const fs = ownerFs(ctxOf(cli), v.owner);
  const rows: { name: string; ip: string; host: string; state: RemoteState }[] = [];
  for (const s of v.shares) {
    const states = upAnswerStates((await fs.read(`${v.dir}/${upAnswerFile(s.host)}`)) ?? "");
    if (!states) return undefined;
    for (const k of s.containers)
      rows.push({ name: k.name, ip: k.ip, host: s.host, state: states.get(k.name) ?? "unknown" });
  }
  return rows;
}

/**
 * Each host's answer to `aplspawn --json COMMAND` on its share (ansible/cluster-status.yml, on every
 * host at once), or why it gave none.
 */
export async function askHosts(
  cli: CliContext,
  v: ClusterView,
  command: "status" | "pids",
): Promise<HostReport[]> {
  const fs = ownerFs(ctxOf(cli), v.owner);
  const report = `${v.dir}/report-${process.pid}-${Date.now()}`;
  await fs.mkdir(report);
  try {
    const r = await asViewer(
      cli,
      v,
      "ansible-playbook",
      [
        "-i",
        v.inventory,
        "-e",
        `@${v.dir}/vars.json`,
        "-e",
        JSON.stringify({ aplspawn_report: report, aplspawn_report_command: command }),
        packaged("ansible/cluster-status.yml"),
      ],
      clusterPlaybookEnv(cli.io.env),
    );
    const files = new Map<string, string | undefined>();
    for (const s of v.shares) files.set(s.host, await fs.read(`${report}/${s.host}.json`));
    return hostReports(v.shares, files, r);
  } finally {
    await fs.rm(...v.shares.map((s) => `${report}/${s.host}.json`));
    await fs.rmdir(report);
  }
}

/** The container of this name in the split, and its host's share. */
export function placed(v: ClusterView, name: string): { k: PlanContainer; share: ShareView } {
  for (const share of v.shares) {
    const k = share.containers.find((x) => x.name === name);
    if (k) return { k, share };
  }
  throw new ExitError(
    `no container named ${name} on the lab's hosts; containers: ${v.containers.map((x) => `${x.name} (${x.host ?? "?"})`).join(", ")}`,
  );
}

/**
 * ssh into a container through its host: the lab key and the known_hosts `run up` merged from the
 * hosts' (every container's host key pinned), the one inventory's ProxyCommand.
 */
export function containerSshArgs(
  v: ClusterView,
  k: PlanContainer,
  user: string,
  command: string[],
): string[] {
  return [
    "-i",
    `${v.dir}/id_ed25519`,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=10",
    ...pinnedOptions(`${v.dir}/known_hosts`),
    ...(k.proxy ? ["-o", `ProxyCommand=${k.proxy}`] : []),
    "-l",
    user,
    k.ip,
    ...(command.length ? ["--", ...command] : []),
  ];
}

/**
 * The shell command that runs `aplspawn exec NAME -- CMD…` on the container's host, as root there
 * (sudo -n unless Ansible logs in as root), over ssh as Ansible reaches the host; -t on a terminal.
 */
export function hostExecCommand(
  ssh: NonNullable<ClusterHost["ssh"]>,
  o: { loginUser: string; shareDir: string; name: string; command: string[]; tty: boolean },
): string {
  const remote = [
    ...((ssh.user ?? o.loginUser) === "root" ? [] : ["sudo", "-n", "--"]),
    "env",
    "SUDO_USER=",
    "SUDO_UID=",
    // The host's aplspawn as its playbooks run it (aplspawn_command), one word.
    ssh.aplspawn ?? "aplspawn",
    "-c",
    `${o.shareDir}/aplspawn.yaml`,
    "exec",
    o.name,
    "--",
    ...o.command,
  ];
  // ssh hands the remote command to the host's shell: one string, each word quoted for it.
  return hostSsh(ssh, o.tty ? ["-t"] : ["-T"], [remote.map((w) => shellQuote(w)).join(" ")]);
}

/**
 * The inventory's entry for a host (its ssh variables), read with ansible-inventory as whoever ssh
 * to the hosts runs as: an inventory may be a script, never run as root for a lab's owner.
 */
export async function inventoryHost(cli: CliContext, c: Config, v: ClusterView, host: string) {
  let hosts: ClusterHost[];
  if (v.owner) {
    const r = await asViewer(cli, v, "ansible-inventory", ["-i", v.inventory, "--list"], {
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_INVENTORY_UNPARSED_FAILED: "1",
    });
    if (r.exitCode !== 0)
      throw new ExitError(
        `ansible-inventory cannot parse ${v.inventory}: ${r.stderr.trim().split("\n").at(-1) ?? ""}`,
      );
    hosts = hostsOfList(JSON.parse(r.stdout) as Parameters<typeof hostsOfList>[0]);
  } else {
    const read = await clusterHosts(ctxOf(cli), { ...c, cluster: { ...c.cluster!, inventory: v.inventory } });
    if ("problem" in read) throw new ExitError(read.problem.message);
    hosts = read.hosts;
  }
  const h = hosts.find((x) => x.name === host);
  if (!h?.ssh) throw new ExitError(`host ${host} is no longer in ${v.inventory}`);
  return h.ssh;
}

/** Run a program on our terminal as the view's owner (their ssh keys and known_hosts), else as us. */
export async function interactiveAsViewer(v: ClusterView, cmd: string, args: string[]): Promise<number> {
  const { runInteractive } = await import("../src/lab/interactive.js");
  if (!v.owner) return runInteractive(cmd, args);
  const o = v.owner;
  return runInteractive("setpriv", [
    "--reuid",
    String(o.uid),
    "--regid",
    String(o.gid),
    "--clear-groups",
    "--",
    "env",
    `HOME=${o.home}`,
    `USER=${o.name}`,
    `LOGNAME=${o.name}`,
    cmd,
    ...args,
  ]);
}
