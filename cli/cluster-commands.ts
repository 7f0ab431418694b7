// status, labs, ssh, exec and run up's table for a lab across hosts (`cluster`): what each command
// does when the lab's containers are on other hosts (cli/cluster.ts reaches them).
import { containerSpecs } from "../config/containers.js";
import type { Config } from "../config/schema.js";
import { containerStatesOf, type HostReport, type RemoteState, statusOf } from "../src/cluster/report.js";
import { ExitError } from "../src/errors.js";
import { printable } from "../src/runner/report.js";
import {
  askHosts,
  type ClusterView,
  clusterView,
  containerSshArgs,
  failedHosts,
  hostExecCommand,
  interactiveAsViewer,
  inventoryHost,
  placed,
  upAnswers,
  upClusterView,
} from "./cluster.js";
import type { LoadedConfig } from "./config-file.js";
import { passOn } from "./container-access.js";
import { type CliContext, type GlobalOptions, jsonLine } from "./context.js";
import { renderLabTable, type LabRow as TableRow } from "./lab-table.js";

const unreachable = (reports: readonly HostReport[]) => reports.filter((r) => !r.answered);

/** `status`: each host's own status of its share, host by host; exit 0 only when every host passes. */
export async function clusterStatus(cli: CliContext, l: LoadedConfig, g: GlobalOptions): Promise<void> {
  const c = l.config;
  const v = await clusterView(cli, l);
  if (!v) {
    if (g.json) cli.io.out(`${JSON.stringify({ ok: false, state: "down", checks: [], hosts: [] })}\n`);
    throw new ExitError(
      `lab ${c.lab} is down: nothing of it is up on its hosts; bring it up with \`${cli.upCommand(l)}\``,
    );
  }
  const reports = await askHosts(cli, v, "status");
  const prefix = c.network.address.split("/")[1];
  const lines: string[] = [];
  const hosts = reports.map((r) => {
    const s = statusOf(r);
    const head = `host ${r.host} (${r.address}): ${r.containers.map((k) => k.name).join(", ") || "no containers"}`;
    if ("error" in s) {
      lines.push(`‣ [ FAIL ] ${head}: ${printable(s.error)}`);
      return { host: r.host, address: r.address, ok: false, error: s.error, checks: [] };
    }
    lines.push(`‣ [ INFO ] ${head}${s.state === "down" ? " (its share is down)" : ""}`);
    let last: string | undefined;
    for (const k of s.checks) {
      const own = r.containers.find((x) => x.name === k.target);
      if (own && k.target !== last)
        lines.push(`‣ [ INFO ] Checking container ${own.name} on ${r.host}, ip ${own.ip}/${prefix}`);
      last = k.target;
      const name = printable(`${r.host}: ${k.name}`);
      lines.push(
        k.ok ? `‣ [ OK ] ${name}` : `‣ [ FAIL ] ${name}${k.detail ? `: ${printable(k.detail)}` : ""}`,
      );
    }
    const ok = s.ok && r.rc === 0;
    return { host: r.host, address: r.address, ok, checks: s.checks, ...(s.state ? { state: s.state } : {}) };
  });
  const checks = hosts.flatMap((h) => h.checks);
  const failedChecks = checks.filter((k) => !k.ok).length;
  const failedHosts = hosts.filter((h) => !h.ok).map((h) => h.host);
  const ok = failedHosts.length === 0;
  if (g.json) cli.io.out(`${JSON.stringify({ ok, hosts })}\n`);
  else {
    lines.push(
      ok
        ? `‣ [ DONE ] all ${checks.length} checks passed on ${hosts.length} hosts`
        : `‣ [ FAILED ] ${failedChecks} of ${checks.length} checks failed; hosts not passing: ${failedHosts.join(", ")}`,
    );
    cli.io.out(`${lines.join("\n")}\n`);
  }
  if (!ok) {
    const gone = unreachable(reports).map((r) => `${r.host}: ${r.error}`);
    throw new ExitError(
      `status failed on ${failedHosts.join(", ")}${gone.length ? `; no answer from ${gone.join("; ")}` : ""}`,
    );
  }
}

/** A lab across hosts in `labs`: its containers' states as their hosts report them. */
export interface ClusterLabPart {
  containersUp: number;
  live: boolean;
  hosts: {
    host: string;
    address: string;
    error?: string;
    containers: { name: string; state: RemoteState }[];
  }[];
}

/** What `labs` shows of a lab across hosts (nothing asked of the hosts when its journal is empty). */
export async function clusterLabPart(cli: CliContext, c: Config, file: string): Promise<ClusterLabPart> {
  const v = await clusterView(cli, { config: c, file, packaged: false });
  if (!v) return { containersUp: 0, live: false, hosts: [] };
  const reports = await askHosts(cli, v, "pids");
  const states = containerStatesOf(reports);
  return {
    containersUp: states.filter((s) => s.state === "running").length,
    live: true,
    hosts: reports.map((r) => ({
      host: r.host,
      address: r.address,
      ...(r.error ? { error: r.error } : {}),
      containers: states.filter((s) => s.host === r.host).map((s) => ({ name: s.name, state: s.state })),
    })),
  };
}

/** The table `run up` ends with: each container, its host and its state there. */
export async function clusterLabTable(cli: CliContext, c: Config, g: GlobalOptions): Promise<void> {
  const v = await clusterView(cli, { config: c, file: g.config ?? "", packaged: false });
  if (!v) return;
  // Right after up, each host's own answer to it says its containers' states; asked again only
  // when one is missing (a second playbook across the hosts).
  const answered = await upAnswers(cli, v);
  const reports = answered ? [] : await askHosts(cli, v, "pids");
  const specs = new Map(containerSpecs(c).map((s) => [s.name, s]));
  const rows: TableRow[] = (answered ?? containerStatesOf(reports)).map((s) => ({
    name: s.name,
    ip: s.ip,
    host: s.host,
    groups: [c.inventory.group, ...(specs.get(s.name)?.groups ?? [])],
    state: s.state,
  }));
  cli.io.out(
    g.json ? `${jsonLine(c.lab, { event: "lab", containers: rows })}\n` : renderLabTable(c, rows, g.config),
  );
  for (const r of unreachable(reports))
    cli.io.err(
      `aplspawn: warning: host ${r.host} (${r.address}) gave no answer: ${printable(r.error ?? "")}\n`,
    );
}

/** `ssh [USER@]NAME`: through the container's host, with the lab key and the pinned host keys. */
export async function clusterSsh(
  cli: CliContext,
  l: LoadedConfig,
  t: { name: string; user: string | undefined; command: string[] },
  login: string | undefined,
): Promise<void> {
  const v = await upClusterView(cli, l);
  const { k, share } = placed(v, t.name);
  const code = await interactiveAsViewer(
    v,
    "ssh",
    containerSshArgs(v, k, t.user ?? login ?? k.user, t.command),
  );
  if (code === 255)
    throw new ExitError(
      `ssh to ${t.name} (${k.ip}) through host ${share.host} (${share.address}) failed: ssh could not reach the host or the container (its message is above); \`aplspawn status\` says which host answers`,
      255,
    );
  passOn(`ssh to ${t.name}`, code);
}

/** `exec NAME -- CMD…`: the container's host runs `aplspawn exec` on its share, as root there. */
export async function clusterExec(
  cli: CliContext,
  l: LoadedConfig,
  name: string,
  command: string[],
): Promise<void> {
  const v = await upClusterView(cli, l);
  const { share } = placed(v, name);
  const ssh = await inventoryHost(cli, l.config, v, share.host);
  const loginUser = v.owner?.name ?? (cli.io.host.uid() === 0 ? "root" : (cli.io.env.USER ?? ""));
  const line = hostExecCommand(ssh, {
    loginUser,
    shareDir: v.vars.aplspawn_share_dir,
    name,
    command,
    tty: process.stdin.isTTY === true && process.stdout.isTTY === true,
  });
  const code = await interactiveAsViewer(v, "sh", ["-c", line]);
  if (code === 255)
    throw new ExitError(
      `exec in ${name}: ssh to its host ${share.host} (${share.address}) failed (its message is above): the host is unreachable or refuses the login`,
      255,
    );
  passOn(`${command[0]} in ${name} on ${share.host}`, code);
}

/** After `run up --keep-going`: exit 1 naming each host that failed and why, when one did. */
export async function failIfHostsFailed(cli: CliContext, c: Config): Promise<void> {
  const failed = await failedHosts(cli, c);
  if (failed.length === 0) return;
  throw new ExitError(
    `the lab is up without ${failed.map((f) => f.host).join(", ")} (--keep-going): ${failed.map((f) => `${f.host}: ${printable(f.why)}`).join("; ")}; \`run down\` takes down every host`,
  );
}

export type { ClusterView };
