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
  const { unreadable, namedFiles, inventoryPlaceProblem } = await import("../src/lab/config-trust.js");
  const ctx = { host: io.host, signal: new AbortController().signal };
  const named = namedFiles(l.config, {
    ...(who.owner ? { owner: who.owner } : {}),
    ...(who.ansibleUser ? { ansible: who.ansibleUser } : {}),
  });
  const problems = await unreadable(ctx, named);
  if (writesInventory && !who.owner) {
    const p = inventoryPlaceProblem(l.config, l.file, l.packaged);
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

/**
 * The unprivileged account Ansible runs as against a lab without owner: --ansible-user, else
 * aplspawn's own (scripts/install.sh makes it); undefined when that one does not exist (the ping
 * is then skipped and provision refused: Ansible never runs as root against a lab).
 */
export async function ansibleAccount(io: CliIo, given: string | undefined): Promise<Owner | undefined> {
  const { ownerFromPasswd, ANSIBLE_ACCOUNT } = await import("../src/lab/owner.js");
  try {
    return ownerFromPasswd(await io.host.fs.readFile("/etc/passwd"), given ?? ANSIBLE_ACCOUNT);
  } catch (e) {
    if (given !== undefined) throw new UsageError(`--ansible-user: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * Who owns what `run up` makes for using the lab: --owner, else the user who ran aplspawn through
 * sudo (SUDO_USER, when it is not root); none when aplspawn runs as root directly.
 */
export async function ownerOf(
  io: CliIo,
  given: string | undefined,
  inventoryDir: string,
  /** Say when SUDO_USER will not own the lab (false: validate, which makes nothing). */
  tell = true,
): Promise<Owner | undefined> {
  const name = given ?? (io.env.SUDO_USER && io.env.SUDO_USER !== "root" ? io.env.SUDO_USER : undefined);
  if (!name) return undefined;
  const passwd = await io.host.fs.readFile("/etc/passwd");
  const { ownerFromPasswd, execAsOwner } = await import("../src/lab/owner.js");
  let o: Owner;
  try {
    o = ownerFromPasswd(passwd, name);
    if (!given && io.env.SUDO_UID !== undefined && Number(io.env.SUDO_UID) !== o.uid)
      throw new Error(`SUDO_USER ${name} is uid ${o.uid}, but SUDO_UID says ${io.env.SUDO_UID}`);
  } catch (e) {
    throw new UsageError(`${given ? "--owner" : "SUDO_USER"}: ${(e as Error).message}`);
  }
  // The inventory is written as the owner: where they cannot write (`sudo -i`, a directory of
  // root's), SUDO_USER gets nothing and the lab stays root's; a named --owner is an error.
  const ctx = { host: io.host, signal: new AbortController().signal };
  const w = await execAsOwner(ctx, o, "test", ["-w", inventoryDir], { readOnly: true });
  if (w.exitCode === 0) return o;
  const why = `${name} cannot write ${inventoryDir}, where the inventory goes (inventory.file)`;
  if (given) throw new UsageError(`--owner: ${why}`);
  if (tell)
    io.err(
      `aplspawn: warning: ${why}: the lab's key, known_hosts and inventory stay root's; run from a directory of ${name}'s to have them\n`,
    );
  return undefined;
}
