// A config is root's code: aplspawn runs it as root. Like ssh's StrictModes it is used only when
// no one but root (or the user it runs the lab for) could have written it, and what it names is
// never a way to aim root at the host: the files it names for reading are read as the lab's owner
// (or the account Ansible runs as), which must be able to read them; the inventory root writes for
// a lab without owner goes only under the config's own directory.
import { dirname, relative, resolve } from "node:path";
import type { Host, HostContext } from "../host/host.js";
import { execAsOwner, type Owner } from "./owner.js";

/**
 * Why the config file must not be used as root: it, or the directory holding it, can be written
 * by a user other than root and `owner` (its uid); undefined when only they can.
 */
export async function configFileProblem(
  host: Host,
  file: string,
  owner?: number,
): Promise<string | undefined> {
  const ok = (uid: number) => uid === 0 || uid === owner;
  const st = await host.fs.stat(file);
  if (!st) return undefined;
  const mode = (st.mode & 0o7777).toString(8);
  if (!ok(st.uid)) return `${file} belongs to uid ${st.uid}, neither root nor the user running the lab`;
  if ((st.mode & 0o022) !== 0) return `${file} can be written by others (mode ${mode})`;
  const dir = dirname(file);
  const d = await host.fs.stat(dir);
  // A directory others may write lets them put another file in its place (unless it is sticky:
  // then only the file's owner may).
  if (d && (!ok(d.uid) || ((d.mode & 0o022) !== 0 && (d.mode & 0o1000) === 0)))
    return `${dir}, which holds it, can be written by others (mode ${(d.mode & 0o7777).toString(8)}, uid ${d.uid})`;
  return undefined;
}

/** Whether `inside` is `dir` or below it. */
const within = (inside: string, dir: string) => {
  const r = relative(dir, inside);
  return r === "" || (!r.startsWith("..") && !r.startsWith("/"));
};

/**
 * Why root must not write the inventory where the config says, for a lab without owner: only under
 * the config's own directory (for the packaged default config, under the current directory).
 */
export function inventoryPlaceProblem(
  inventoryFile: string,
  /** The config file, and whether it is the packaged default. */
  config: { file: string; packaged: boolean },
): string | undefined {
  const inventory = resolve(inventoryFile);
  const base = config.packaged ? process.cwd() : dirname(config.file);
  if (within(dirname(inventory), base)) return undefined;
  return `inventory.file: ${inventory} is outside ${base}, the config's own directory: root writes a lab's inventory only there when the lab has no owner (run it through sudo from your account to have it written as you, anywhere you may write)`;
}

/** The files the config names for reading that their reader cannot read, each with the key naming it. */
export async function unreadable(
  ctx: HostContext,
  files: readonly { key: string; path: string; as: Owner }[],
): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    // One that is not there is for the checks of the config's files to report.
    if (!(await ctx.host.fs.stat(f.path))) continue;
    const r = await execAsOwner(ctx, f.as, "test", ["-r", f.path, "-a", "!", "-d", f.path], {
      readOnly: true,
    });
    if (r.exitCode !== 0)
      out.push(
        `${f.key}: ${f.path} cannot be read by ${f.as.name}, whom aplspawn reads it as (a config's files are read as the user the lab is for, never as root)`,
      );
  }
  return out;
}

/**
 * The files a config names, each with who reads it: the key (copied into the lab) as the lab's
 * owner (root's own lab: root), the playbook as whoever Ansible runs as.
 */
export function namedFiles(
  /** containers.sshKey and provision.playbook, as the config gives them. */
  named: { sshKey: string | undefined; playbook: string | undefined },
  o: { owner?: Owner; ansible?: Owner },
): { key: string; path: string; as: Owner }[] {
  const key = named.sshKey;
  const out: { key: string; path: string; as: Owner }[] = [];
  if (key !== undefined && o.owner)
    for (const path of [resolve(key), `${resolve(key)}.pub`])
      out.push({ key: "containers.sshKey", path, as: o.owner });
  const ansible = o.owner ?? o.ansible;
  if (named.playbook !== undefined && ansible)
    out.push({ key: "provision.playbook", path: resolve(named.playbook), as: ansible });
  return out;
}
