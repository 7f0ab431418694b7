// The Ansible inventory of a lab, as INI or YAML: each host with its address, user, key, and ssh
// options that pin host keys to the lab's known_hosts, so `ansible -i FILE` needs no extra flags.
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { z } from "zod";
import { shellQuote } from "../host/host.js";
import { pinnedOptions } from "./ssh.js";

/** Everything an inventory says (the config's: workflows/lab-params.ts inventorySpec). */
export const inventorySpecSchema = z.object({
  format: z.enum(["ini", "yaml"]),
  group: z.string(),
  /**
   * The Python every host runs modules with, when the lab makes sure of it (workflows/lab-params.ts
   * labPython): Ansible then skips its interpreter discovery, a shell and a Python run on each host
   * at every play. Unset: Ansible discovers it.
   */
  python: z.string().optional(),
  hosts: z.array(
    z.object({
      name: z.string(),
      ip: z.string(),
      /** Its login user; the spec's user when not given (journals written before sets). */
      user: z.string().optional(),
      /** Its groups besides `group`. */
      groups: z.array(z.string()).optional(),
      /** Its host variables (never ansible_*: config/schema.ts refuses those). */
      vars: z.record(z.string(), z.json()).optional(),
      /** A lab across hosts: the ssh ProxyCommand through the host that holds it (config/cluster.ts). */
      proxy: z.string().optional(),
    }),
  ),
  /** Groups of groups: each key's children. */
  children: z.record(z.string(), z.array(z.string())).optional(),
  user: z.string(),
  key: z.string(),
  knownHosts: z.string(),
  /**
   * Where Ansible keeps its ssh master sockets for this lab. Its default (~/.ansible/cp, named by
   * address and user) is shared by every lab: a master left connected to a lab that is gone (same
   * addresses) would take the next lab's connections and hang them.
   */
  controlPathDir: z.string(),
});
export type InventorySpec = z.infer<typeof inventorySpecSchema>;

/**
 * The lab's directory for Ansible's ssh master sockets: short and under /run, named by the lab
 * directory. A socket path holds at most 107 bytes and Ansible adds 11 to the directory, ssh 17
 * more while it creates the socket: under a workdir of 70 bytes or so, Ansible failed with "path
 * too long for Unix domain socket".
 */
export const controlPathDir = (lab: string) =>
  `/run/aplspawn-cp-${createHash("sha256").update(lab).digest("hex").slice(0, 12)}`;

/** The common ssh arguments, as one string (Ansible splits it with shlex: quoted as a shell would). */
const sshCommonArgs = (knownHosts: string, proxy?: string) =>
  [
    ...pinnedOptions(knownHosts),
    "-o",
    "IdentitiesOnly=yes",
    ...(proxy ? ["-o", `ProxyCommand=${proxy}`] : []),
  ]
    .map(shellQuote)
    .join(" ");

/** The first line of every inventory aplspawn writes: what tells its files from the user's. */
export const INVENTORY_MARK = "# Written by aplspawn.";

/** A value as a Python literal, as Ansible's INI parser reads values (ast.literal_eval). */
export function pythonLiteral(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return String(v);
  // A JSON string is a Python string literal too (\n, \", \\ and \uXXXX escapes).
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pythonLiteral).join(", ")}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${JSON.stringify(k)}: ${pythonLiteral(x)}`)
    .join(", ")}}`;
}

/** Each group's hosts and children, the lab's group first, then in the order they first appear. */
function groupsOf(s: InventorySpec): Map<string, { hosts: string[]; children: string[] }> {
  const groups = new Map<string, { hosts: string[]; children: string[] }>();
  const of = (g: string) => {
    const e = groups.get(g) ?? { hosts: [], children: [] };
    groups.set(g, e);
    return e;
  };
  for (const h of s.hosts)
    for (const g of [s.group, ...(h.groups ?? [])])
      if (!of(g).hosts.includes(h.name)) of(g).hosts.push(h.name);
  for (const [g, kids] of Object.entries(s.children ?? {})) of(g).children.push(...kids);
  return groups;
}

/** aplspawn's connection variables of a host (they pin its host key; a set's vars never replace them). */
function connectionVars(s: InventorySpec, h: InventorySpec["hosts"][number]) {
  // host_key_checking per host: a host variable outranks an ansible.cfg or ANSIBLE_HOST_KEY_CHECKING
  // that turns it off (Ansible would then put StrictHostKeyChecking=no before our pinned options).
  return {
    ansible_host: h.ip,
    ansible_host_key_checking: "true",
    ansible_user: h.user ?? s.user,
    ansible_ssh_private_key_file: s.key,
    ansible_ssh_common_args: sshCommonArgs(s.knownHosts, h.proxy),
    ansible_control_path_dir: s.controlPathDir,
  };
}

/**
 * aplspawn's defaults for how Ansible runs on the lab's hosts, as variables of the lab's group: the
 * lowest place Ansible reads, so the user's group_vars, host_vars, play vars and -e each override
 * them (a host variable of the inventory would outrank group_vars).
 * - ansible_pipelining: each module goes to the host's Python over the connection, one command per
 *   task, where Ansible would otherwise make a temporary directory, copy the module there, run it
 *   and remove it. An image whose sudoers says `requiretty` (old RHEL) refuses that to become: set
 *   ansible_pipelining=false for it. The user's sudoers entry does not say `!requiretty`: sudo-rs
 *   knows no such option.
 * - ansible_python_interpreter, when the lab makes sure of it (InventorySpec.python).
 */
export const labGroupVars = (s: Pick<InventorySpec, "python">): Record<string, string> => ({
  ansible_pipelining: "true",
  ...(s.python ? { ansible_python_interpreter: s.python } : {}),
});

/**
 * The inventory in the shape `ansible-inventory --list` prints and inventory scripts return:
 * each group's hosts and children, every host's variables under _meta.hostvars.
 */
export function inventoryList(s: InventorySpec): Record<string, unknown> {
  const out: Record<string, unknown> = {
    _meta: {
      hostvars: Object.fromEntries(
        s.hosts.map((h) => [h.name, { ...(h.vars ?? {}), ...connectionVars(s, h) }]),
      ),
    },
  };
  const groups = groupsOf(s);
  const children = new Set([...groups.values()].flatMap((e) => e.children));
  for (const [g, e] of groups)
    out[g] = {
      ...(e.hosts.length ? { hosts: e.hosts } : {}),
      ...(e.children.length ? { children: e.children } : {}),
      ...(g === s.group ? { vars: labGroupVars(s) } : {}),
    };
  out.all = { children: [...groups.keys()].filter((g) => !children.has(g)) };
  return out;
}

/** Render the inventory file. */
export function renderInventory(s: InventorySpec): string {
  const vars = (h: InventorySpec["hosts"][number]) => connectionVars(s, h);
  const groups = groupsOf(s);
  if (s.format === "yaml") {
    // Each host's variables once, under the lab's group; its other groups only name it.
    const byName = new Map(s.hosts.map((h) => [h.name, h]));
    const children = Object.fromEntries(
      [...groups].map(([g, e]) => [
        g,
        {
          ...(e.hosts.length
            ? {
                hosts: Object.fromEntries(
                  e.hosts.map((n) => {
                    const h = byName.get(n);
                    return [n, g === s.group && h ? { ...(h.vars ?? {}), ...vars(h) } : {}];
                  }),
                ),
              }
            : {}),
          ...(e.children.length ? { children: Object.fromEntries(e.children.map((k) => [k, {}])) } : {}),
          ...(g === s.group ? { vars: labGroupVars(s) } : {}),
        },
      ]),
    );
    return `${INVENTORY_MARK}\n${stringify({ all: { children } })}`;
  }
  // INI values go through shlex, then are Python literals to Ansible: aplspawn's are quoted so
  // spaces and quotes survive (strings); the user's are Python literals (keeping their types), quoted.
  const lit = (v: string) => `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  const lines = s.hosts.map(
    (h) =>
      `${h.name} ${[
        ...Object.entries(vars(h)).map(([k, v]) => `${k}=${lit(v)}`),
        ...Object.entries(h.vars ?? {}).map(([k, v]) => `${k}=${lit(pythonLiteral(v))}`),
      ].join(" ")}`,
  );
  const groupVars = Object.entries(labGroupVars(s)).map(([k, v]) => `${k}=${lit(v)}`);
  const sections = [`[${s.group}]\n${lines.join("\n")}\n`, `[${s.group}:vars]\n${groupVars.join("\n")}\n`];
  for (const [g, e] of groups) {
    if (g !== s.group && e.hosts.length) sections.push(`[${g}]\n${e.hosts.join("\n")}\n`);
    if (e.children.length) sections.push(`[${g}:children]\n${e.children.join("\n")}\n`);
  }
  return `${INVENTORY_MARK}\n${sections.join("\n")}`;
}
