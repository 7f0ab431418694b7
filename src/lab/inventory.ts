// The Ansible inventory of a lab, as INI or YAML: each host with its address, user, key, and ssh
// options that pin host keys to the lab's known_hosts, so `ansible -i FILE` needs no extra flags.
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { z } from "zod";
import { containerSpecs } from "../../config/containers.js";
import { knownHostsPath, labDir, sshKeyPath } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { shellQuote } from "../host/host.js";
import { pinnedOptions } from "./ssh.js";

/** Everything an inventory says. */
export const inventorySpecSchema = z.object({
  format: z.enum(["ini", "yaml"]),
  group: z.string(),
  hosts: z.array(z.object({ name: z.string(), ip: z.string() })),
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

/** The lab's inventory as the config describes it (`run up` and `aplspawn inventory` share it). */
export function inventorySpec(
  c: Config,
  format: InventorySpec["format"] = c.inventory.format,
): InventorySpec {
  return {
    format,
    group: c.inventory.group,
    hosts: containerSpecs(c).map((s) => ({ name: s.name, ip: s.ip })),
    user: c.containers.user,
    key: sshKeyPath(c),
    knownHosts: knownHostsPath(c),
    controlPathDir: controlPathDir(labDir(c)),
  };
}

/** The common ssh arguments, as one string (Ansible splits it with shlex: quoted as a shell would). */
const sshCommonArgs = (knownHosts: string) =>
  [...pinnedOptions(knownHosts), "-o", "IdentitiesOnly=yes"].map(shellQuote).join(" ");

/** The first line of every inventory aplspawn writes: what tells its files from the user's. */
export const INVENTORY_MARK = "# Written by aplspawn.";

/** Render the inventory file. */
export function renderInventory(s: InventorySpec): string {
  // host_key_checking per host: a host variable outranks an ansible.cfg or ANSIBLE_HOST_KEY_CHECKING
  // that turns it off (Ansible would then put StrictHostKeyChecking=no before our pinned options).
  const vars = (h: { ip: string }) => ({
    ansible_host: h.ip,
    ansible_host_key_checking: "true",
    ansible_user: s.user,
    ansible_ssh_private_key_file: s.key,
    ansible_ssh_common_args: sshCommonArgs(s.knownHosts),
    ansible_control_path_dir: s.controlPathDir,
  });
  if (s.format === "yaml") {
    const hosts = Object.fromEntries(s.hosts.map((h) => [h.name, vars(h)]));
    return `${INVENTORY_MARK}\n${stringify({ all: { children: { [s.group]: { hosts } } } })}`;
  }
  // INI values are Python literals to Ansible: quote each one so spaces and quotes survive.
  const lit = (v: string) => `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  const lines = s.hosts.map(
    (h) =>
      `${h.name} ${Object.entries(vars(h))
        .map(([k, v]) => `${k}=${lit(v)}`)
        .join(" ")}`,
  );
  return `${INVENTORY_MARK}\n[${s.group}]\n${lines.join("\n")}\n`;
}
