// Which ansible.cfg Ansible may read when aplspawn runs it. Ansible reads ANSIBLE_CONFIG, else
// ./ansible.cfg, else ~/.ansible.cfg and /etc/ansible/ansible.cfg; a config can load plugins, so
// one that another local user wrote is their code run by aplspawn. Like ssh's StrictModes, a
// config is used only when it belongs to root or to the user Ansible runs as, and no one else may
// write it; otherwise Ansible gets an empty config of that user's lab copies (config/paths.ts
// ownerFiles), and says why.
import { resolve } from "node:path";
import type { Host } from "../host/host.js";
import type { Owner } from "./owner.js";

/** Why Ansible, run as `as`, must not read `path`; undefined when it may (or nothing is there). */
async function untrusted(host: Host, path: string, as: Owner): Promise<string | undefined> {
  const st = await host.fs.stat(path);
  if (!st) return undefined;
  if (st.uid !== 0 && st.uid !== as.uid) return `it belongs to uid ${st.uid}, neither root nor ${as.name}`;
  if ((st.mode & 0o022) !== 0) return `others may write it (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * The environment that keeps Ansible, run as `as` in the current directory, from reading a config
 * another user could have written; `warn` is told when one is passed over.
 */
export async function ansibleConfigEnv(
  host: Host,
  as: Owner,
  o: { env: Record<string, string | undefined>; empty: string; warn(message: string): void },
): Promise<Record<string, string>> {
  const why = await untrustedConfig(host, as, o.env);
  if (!why) return {};
  o.warn(`${why}; it runs with an empty config instead`);
  return { ANSIBLE_CONFIG: o.empty };
}

/**
 * Why Ansible, run as `as` in the current directory, would read a config another user could have
 * written ("Ansible does not read PATH: …"); undefined when it would not.
 */
export async function untrustedConfig(
  host: Host,
  as: Owner,
  env: Record<string, string | undefined>,
): Promise<string | undefined> {
  const given = env.ANSIBLE_CONFIG;
  const path = given ? resolve(given) : resolve("ansible.cfg");
  const why = await untrusted(host, path, as);
  return why ? `Ansible does not read ${path}: ${why}` : undefined;
}

/** The empty config (Ansible wants a file named *.cfg). */
export const EMPTY_ANSIBLE_CFG =
  "# aplspawn: an empty Ansible config, read instead of an ansible.cfg that others could have written\n";
