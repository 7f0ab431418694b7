// The lab's owner: the user who ran `run up` through sudo (SUDO_USER) or named with --owner. They
// get their own copies of what using the lab needs (config/paths.ts ownerFiles); everything done
// in their home or in their current directory is done as them (setpriv), never as root: root
// following paths a user controls could be made to write anywhere.
import { z } from "zod";
import { UsageError } from "../errors.js";
import type { ExecOptions, ExecResult, Host, HostContext } from "../host/host.js";
import { type OwnerWrites, ownerWriteCommand } from "./owner-write.js";

export const ownerSchema = z.object({
  name: z.string(),
  uid: z.number().int().positive(),
  gid: z.number().int().nonnegative(),
  home: z.string(),
});
export type Owner = z.infer<typeof ownerSchema>;

/**
 * The unprivileged account aplspawn runs Ansible as when a lab has no owner (a root shell, CI):
 * never root against containers that run other people's code. scripts/install.sh makes it.
 */
export const ANSIBLE_ACCOUNT = "aplspawn";

/** The user's passwd entry on the host: the owner, or an error naming what is wrong. */
export function ownerFromPasswd(passwd: string, name: string): Owner {
  for (const line of passwd.split("\n")) {
    const [n, , uid, gid, , home] = line.split(":");
    if (n !== name || uid === undefined || gid === undefined || !home) continue;
    const o = { name, uid: Number(uid), gid: Number(gid), home };
    if (o.uid === 0) throw new Error(`user ${name} is root: a lab run as root needs no owner`);
    if (!home.startsWith("/")) throw new Error(`user ${name}'s home ${home} is not an absolute path`);
    return ownerSchema.parse(o);
  }
  throw new Error(`no user ${name} in /etc/passwd`);
}

/**
 * The unprivileged account Ansible runs as against a lab without owner: `given` (--ansible-user),
 * else aplspawn's own (scripts/install.sh makes it); undefined when that one does not exist (the
 * ping is then skipped and provision refused: Ansible never runs as root against a lab).
 */
export async function ansibleAccount(host: Host, given: string | undefined): Promise<Owner | undefined> {
  try {
    return ownerFromPasswd(await host.fs.readFile("/etc/passwd"), given ?? ANSIBLE_ACCOUNT);
  } catch (e) {
    if (given !== undefined) throw new UsageError(`--ansible-user: ${(e as Error).message}`);
    return undefined;
  }
}

/** Who asks for a lab's owner: a name given (--owner), else the sudo caller's (SUDO_USER, SUDO_UID). */
export interface OwnerAsked {
  given: string | undefined;
  env: { SUDO_USER?: string | undefined; SUDO_UID?: string | undefined };
}

/**
 * Who owns what `run up` makes for using the lab: the name given, else the user who ran aplspawn
 * through sudo (SUDO_USER, when it is not root); none when aplspawn runs as root directly. The
 * inventory is written as the owner: where they cannot write `inventoryDir` (`sudo -i`, a directory
 * of root's), SUDO_USER gets nothing and the lab stays root's (`warning` says so); a given name is
 * a usage error.
 */
export async function labOwner(
  ctx: HostContext,
  asked: OwnerAsked,
  inventoryDir: string,
): Promise<{ owner?: Owner; warning?: string }> {
  const { given, env } = asked;
  const name = given ?? (env.SUDO_USER && env.SUDO_USER !== "root" ? env.SUDO_USER : undefined);
  if (!name) return {};
  let o: Owner;
  try {
    o = ownerFromPasswd(await ctx.host.fs.readFile("/etc/passwd"), name);
    if (!given && env.SUDO_UID !== undefined && Number(env.SUDO_UID) !== o.uid)
      throw new Error(`SUDO_USER ${name} is uid ${o.uid}, but SUDO_UID says ${env.SUDO_UID}`);
  } catch (e) {
    throw new UsageError(`${given ? "--owner" : "SUDO_USER"}: ${(e as Error).message}`);
  }
  const w = await execAsOwner(ctx, o, "test", ["-w", inventoryDir], { readOnly: true });
  if (w.exitCode === 0) return { owner: o };
  const why = `${name} cannot write ${inventoryDir}, where the inventory goes (inventory.file)`;
  if (given) throw new UsageError(`--owner: ${why}`);
  return {
    warning: `${why}: the lab's key, known_hosts and inventory stay root's; run from a directory of ${name}'s to have them`,
  };
}

/** Run a command as the owner: their uid and gid, no supplementary groups, their HOME. */
export function execAsOwner(
  ctx: HostContext,
  o: Owner,
  cmd: string,
  args: readonly string[],
  opts: Pick<ExecOptions, "input" | "readOnly" | "timeoutMs" | "env" | "onLine"> = {},
): Promise<ExecResult> {
  return ctx.host.exec(
    "setpriv",
    ["--reuid", String(o.uid), "--regid", String(o.gid), "--clear-groups", "--", cmd, ...args],
    {
      ...opts,
      allowFail: true,
      signal: ctx.signal,
      env: { HOME: o.home, USER: o.name, LOGNAME: o.name, ...opts.env },
    },
  );
}

/** Files as the owner sees them (or as root, without an owner): the lab's few file operations. */
export interface OwnerFs {
  /** The file's text, or undefined when it cannot be read. */
  read(path: string): Promise<string | undefined>;
  write(path: string, text: string, mode: number): Promise<void>;
  /** The directories (mode 0700), then the files: as the owner, in one process. */
  writeAll(w: OwnerWrites): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Remove the files (those missing are no error): as the owner, in one process. */
  rm(...paths: string[]): Promise<void>;
  /** Remove the empty directories, in order (one not empty or missing is left, no error). */
  rmdir(...paths: string[]): Promise<void>;
}

export function ownerFs(ctx: HostContext, o: Owner | undefined): OwnerFs {
  const fs = ctx.host.fs;
  if (!o)
    return {
      read: (p) => fs.readFile(p).catch(() => undefined),
      write: (p, t, m) => fs.writeFile(p, t, m),
      mkdir: (p) => fs.mkdir(p, 0o700),
      async writeAll(w) {
        for (const d of w.dirs) await fs.mkdir(d, 0o700);
        for (const f of w.files) await fs.writeFile(f.path, f.text, f.mode);
      },
      async rm(...ps) {
        for (const p of ps) await fs.rm(p);
      },
      async rmdir(...ps) {
        for (const p of ps) await fs.rmdir(p).catch(() => undefined);
      },
    };
  const must = async (what: string, r: Promise<ExecResult>) => {
    const x = await r;
    if (x.exitCode !== 0)
      throw new Error(`${what} as ${o.name} failed: ${x.stderr.trim() || `exit ${x.exitCode}`}`);
  };
  const writeAs = (what: string, w: OwnerWrites) => {
    const { cmd, args, input } = ownerWriteCommand(w);
    // Perl's variables are root's environment, for root's programs: not for one run as the owner
    // (no options, no module paths of root's).
    return must(
      what,
      execAsOwner(ctx, o, cmd, args, { input, env: { PERL5OPT: "", PERL5LIB: "", PERLLIB: "" } }),
    );
  };
  return {
    async read(p) {
      const r = await execAsOwner(ctx, o, "cat", ["--", p], { readOnly: true });
      return r.exitCode === 0 ? r.stdout : undefined;
    },
    // A fresh temp file beside it, then rename (owner-write.ts); the content comes on stdin.
    write: (p, t, m) => writeAs(`writing ${p}`, { dirs: [], files: [{ path: p, text: t, mode: m }] }),
    // A process start per file was most of the second a small lab's up spent after its last
    // container answered: one for all.
    writeAll: (w) => writeAs(`writing ${w.files.map((f) => f.path).join(", ")}`, w),
    mkdir: (p) => must(`making ${p}`, execAsOwner(ctx, o, "mkdir", ["-p", "-m", "0700", "--", p])),
    rm: (...ps) => must(`removing ${ps.join(", ")}`, execAsOwner(ctx, o, "rm", ["-f", "--", ...ps])),
    // rmdir goes on past a directory it cannot remove (a parent after its child then fails too).
    rmdir: async (...ps) => {
      await execAsOwner(ctx, o, "rmdir", ["--", ...ps]);
    },
  };
}
