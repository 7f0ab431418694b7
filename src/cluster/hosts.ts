// The hosts of a lab across hosts, read from its Ansible inventory with `ansible-inventory --list`
// (Ansible parses it: INI, YAML, a script or a plugin, as ansible-playbook will), and the problems
// `validate` reports of them: the inventory missing or unparsable, the lab not fitting the hosts.
import { resolve } from "node:path";
import { type ClusterHost, type ClusterPlan, splitLab } from "../../config/cluster.js";
import type { Problem } from "../../config/diagnostic.js";
import type { Config } from "../../config/schema.js";
import { type HostContext, shellQuote } from "../host/host.js";

/** What `ansible-inventory --list` prints, as far as it is read here. */
interface InventoryList {
  [group: string]:
    | { hosts?: string[]; children?: string[]; hostvars?: Record<string, Record<string, unknown>> }
    | undefined;
}

/**
 * The inventory's hosts, each with its groups (through children too) and the address its peers
 * reach it at: `aplspawn_address`, else `ansible_host`, else its name.
 */
export function hostsOfList(list: InventoryList): ClusterHost[] {
  const groupsOf = new Map<string, Set<string>>();
  const walk = (group: string, seen: Set<string>, into: string[]) => {
    if (seen.has(group)) return;
    seen.add(group);
    const g = list[group];
    if (!g || group === "_meta") return;
    into.push(...(g.hosts ?? []));
    for (const k of g.children ?? []) walk(k, seen, into);
  };
  for (const group of Object.keys(list)) {
    if (group === "_meta") continue;
    const hosts: string[] = [];
    walk(group, new Set(), hosts);
    for (const h of hosts) groupsOf.set(h, (groupsOf.get(h) ?? new Set()).add(group));
  }
  const vars = list._meta?.hostvars ?? {};
  return [...groupsOf].map(([name, groups]) => {
    const v = vars[name] ?? {};
    const address = v.aplspawn_address ?? v.ansible_host ?? name;
    const str = (k: string) =>
      typeof v[k] === "string" || typeof v[k] === "number" ? String(v[k]) : undefined;
    const port = Number(str("ansible_port") ?? str("ansible_ssh_port"));
    const ssh = {
      host: str("ansible_host") ?? name,
      ...(str("ansible_user") ? { user: str("ansible_user")! } : {}),
      ...(Number.isInteger(port) && port > 0 ? { port } : {}),
      ...(str("ansible_ssh_private_key_file") ? { key: str("ansible_ssh_private_key_file")! } : {}),
      ...(str("ansible_ssh_common_args") ? { args: str("ansible_ssh_common_args")! } : {}),
      ...(str("aplspawn_command") ? { aplspawn: str("aplspawn_command")! } : {}),
    };
    return { name, address: String(address), groups: [...groups], ssh };
  });
}

/**
 * The environment the cluster's playbooks run in: plain output aplspawn reads, and ssh pipelining
 * (a module goes through the open ssh connection, not copied to a temporary file first: a few
 * round trips less per task and host) unless the caller's environment says otherwise.
 */
export const clusterPlaybookEnv = (env: Readonly<Record<string, string | undefined>>) => ({
  ANSIBLE_NOCOLOR: "1",
  ANSIBLE_FORCE_COLOR: "0",
  ANSIBLE_STDOUT_CALLBACK: "default",
  ANSIBLE_PIPELINING: env.ANSIBLE_PIPELINING ?? "True",
});

/** The hosts of cluster.inventory, or the problem that keeps them from being read. */
export async function clusterHosts(
  ctx: HostContext,
  c: Config,
): Promise<{ hosts: ClusterHost[] } | { problem: Problem }> {
  const at = ["cluster", "inventory"];
  const file = resolve(c.cluster!.inventory);
  if (!(await ctx.host.fs.stat(file))) return { problem: { at, message: `${file} does not exist` } };
  if (!(await ctx.host.which("ansible-inventory")))
    return {
      problem: {
        at,
        message:
          "ansible-inventory is not installed: a lab across hosts is driven by Ansible (install ansible-core)",
      },
    };
  const r = await ctx.host.exec("ansible-inventory", ["-i", file, "--list"], {
    readOnly: true,
    allowFail: true,
    signal: ctx.signal,
    env: { ANSIBLE_NOCOLOR: "1", ANSIBLE_INVENTORY_UNPARSED_FAILED: "1" },
  });
  const why = r.stderr.trim().split("\n").at(-1) ?? "";
  if (r.exitCode !== 0) return { problem: { at, message: `ansible-inventory cannot parse ${file}: ${why}` } };
  try {
    return { hosts: hostsOfList(JSON.parse(r.stdout) as InventoryList) };
  } catch {
    return { problem: { at, message: `ansible-inventory printed no inventory for ${file}` } };
  }
}

/**
 * The lab split over the hosts of its inventory, or every problem that keeps it from being split.
 * `digests`: the control node's verified file:// images (config/cluster.ts splitLab).
 */
export async function clusterPlan(
  ctx: HostContext,
  c: Config,
  digests: Readonly<Record<string, string>> = {},
): Promise<{ plan?: ClusterPlan; hosts?: ClusterHost[]; problems: Problem[] }> {
  const read = await clusterHosts(ctx, c);
  if ("problem" in read) return { problems: [read.problem] };
  return { ...splitLab(c, read.hosts, digests), hosts: read.hosts };
}

/**
 * ssh to a host as Ansible reaches it (its user, port, key and ssh_common_args), as one command
 * line for a shell: the host's common args are a shell-like string already, as Ansible splits them;
 * every other word is quoted. `more` goes before the destination (options, -W), `remote` after it.
 */
export function hostSsh(
  ssh: NonNullable<ClusterHost["ssh"]>,
  more: readonly string[] = [],
  remote: readonly string[] = [],
): string {
  const q = (w: string) => shellQuote(w);
  return [
    "ssh",
    ...(ssh.args ? [ssh.args] : []),
    "-o",
    "BatchMode=yes",
    ...(ssh.port ? ["-p", String(ssh.port)] : []),
    ...(ssh.key ? ["-i", q(ssh.key), "-o", "IdentitiesOnly=yes"] : []),
    ...more.map(q),
    q(ssh.user ? `${ssh.user}@${ssh.host}` : ssh.host),
    ...remote.map(q),
  ].join(" ");
}

/**
 * The ssh ProxyCommand that reaches a container through its host, as Ansible reaches the host: the
 * control node needs no route to the lab. ssh runs it with the user's shell.
 */
export const proxyCommand = (ssh: NonNullable<ClusterHost["ssh"]>): string => hostSsh(ssh, ["-W", "%h:%p"]);
