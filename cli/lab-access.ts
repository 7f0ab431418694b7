// Who a lab's Ansible runs as and what its config may name, as `run` and `test` check it before
// anything changes: the lab's owner (SUDO_USER or --owner), else an unprivileged account.

import { UsageError } from "../src/errors.js";
import type { Owner } from "../src/lab/owner.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliIo } from "./context.js";

/**
 * What a config names must not aim root at the host (src/lab/config-trust.ts): the files it names
 * for reading are read as the lab's owner (the playbook as Ansible's account), who must be able to;
 * the inventory of a lab without owner goes only under the config's directory. Usage errors: found
 * before anything is done.
 */
export async function mayUse(
  io: CliIo,
  l: LoadedConfig,
  who: LabAccounts,
  /** The run writes the inventory where the config says (up). */
  writesInventory: boolean,
): Promise<void> {
  if (io.host.uid() !== 0) return;
  const [{ unreadable, namedFiles, inventoryPlaceProblem }, { namedFilesOf }] = await Promise.all([
    import("../src/lab/config-trust.js"),
    import("../workflows/lab-params.js"),
  ]);
  const ctx = { host: io.host, signal: new AbortController().signal };
  const named = namedFiles(namedFilesOf(l.config), {
    ...(who.owner ? { owner: who.owner } : {}),
    ...(who.ansibleUser ? { ansible: who.ansibleUser } : {}),
  });
  const problems = await unreadable(ctx, named);
  if (writesInventory && !who.owner) {
    const p = inventoryPlaceProblem(l.config.inventory.file, l);
    if (p) problems.push(p);
  }
  if (problems.length > 0) throw new UsageError(problems.join("\n"));
}

/** Who a lab's Ansible runs as: its owner, else an unprivileged account (never root). */
export interface LabAccounts {
  owner?: Owner;
  ansibleUser?: Owner;
}

/**
 * Who a run acts for, by the options its workflow takes: the lab's owner (--owner, else
 * SUDO_USER), else the unprivileged account Ansible runs as (--ansible-user, else aplspawn's own).
 * Naming both is a usage error: with an owner, Ansible runs as them.
 */
export async function labAccounts(
  io: CliIo,
  takes: { owner: boolean; ansibleUser: boolean },
  given: { owner?: string | undefined; ansibleUser?: string | undefined },
  inventoryDir: string,
): Promise<LabAccounts> {
  const owner = takes.owner ? await ownerOf(io, given.owner, inventoryDir) : undefined;
  if (owner && given.ansibleUser !== undefined)
    throw new UsageError(
      `--ansible-user is for a lab without owner; this one has ${owner.name}, and Ansible runs as them`,
    );
  const ansibleUser = takes.ansibleUser && !owner ? await ansibleAccount(io, given.ansibleUser) : undefined;
  return { ...(owner ? { owner } : {}), ...(ansibleUser ? { ansibleUser } : {}) };
}

/** The unprivileged account Ansible runs as against a lab without owner (src/lab/owner.ts). */
export async function ansibleAccount(io: CliIo, given: string | undefined): Promise<Owner | undefined> {
  const { ansibleAccount: account } = await import("../src/lab/owner.js");
  return account(io.host, given);
}

/** The lab's owner (src/lab/owner.ts labOwner), saying on stderr when SUDO_USER will not be it. */
export async function ownerOf(
  io: CliIo,
  given: string | undefined,
  inventoryDir: string,
  /** Say when SUDO_USER will not own the lab (false: validate, which makes nothing). */
  tell = true,
): Promise<Owner | undefined> {
  const { labOwner } = await import("../src/lab/owner.js");
  const ctx = { host: io.host, signal: new AbortController().signal };
  const { owner, warning } = await labOwner(ctx, { given, env: io.env }, inventoryDir);
  if (warning && tell) io.err(`aplspawn: warning: ${warning}\n`);
  return owner;
}
