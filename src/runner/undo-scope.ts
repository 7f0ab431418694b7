// Where undoing a journal entry may act on paths. A rollback removes, unmounts and rewrites what its
// entry names, and a journal is data: edited by hand, copied from elsewhere, written by another
// version. Each entry's rollback gets a host that refuses, naming the path, to remove, rename,
// rewrite, chmod, chown or unmount anything outside the places its workflow gives (the lab's own
// directories) and those its kind declares (TaskDef.undoPaths): the rollback then fails and says
// so, and the entry stays in the journal. Paths are judged as the kernel will walk them: the parent
// directory with its links resolved (a link on the way out of the lab is no way out), the last
// component as named (rm, rmdir and rename do not follow it; umount does, and is judged resolved).
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { ExitError } from "../errors.js";
import { type Host, type HostFs, type RootFs, rootReads } from "../host/host.js";
import type { JournalEntry } from "./journal.js";
import type { PathRule } from "./task.js";

export type { PathRule };

/** The places undoing an entry may act on (the lab's directories, its /run entries, …). */
export type UndoScope = (entry: JournalEntry) => readonly PathRule[];

// Commands that remove or unmount the paths they are given.
const REMOVERS: Record<string, string | undefined> = { umount: "unmount", rm: "remove", rmdir: "remove" };

// Where a path leads: its nearest existing ancestor resolved (links followed), the rest as named.
async function real(host: Host, path: string): Promise<string> {
  if (path === "/") return "/";
  try {
    return await host.fs.realpath(path);
  } catch {
    return join(await real(host, dirname(path)), basename(path));
  }
}

/**
 * `host`, with the path-changing operations (fs.rm, rmdir, rename, writeFile, createExclusive,
 * openWrite, chmod, chown; a confined root's writes; the commands umount, rm and rmdir, also run
 * through setpriv) refused outside `rules`. `what` names the entry in errors.
 */
export function confinedHost(host: Host, rules: readonly PathRule[], what: string): Host {
  // The places' own paths resolved too: a workdir reached through a link is still the lab's.
  let places: Promise<{ path: string; tree: boolean }[]> | undefined;
  const allowed = async (p: string): Promise<boolean> => {
    places ??= Promise.all(
      rules.flatMap((r) =>
        r instanceof RegExp
          ? []
          : typeof r === "string"
            ? [real(host, r).then((path) => ({ path, tree: true }))]
            : [real(host, r.only).then((path) => ({ path, tree: false }))],
      ),
    );
    const under = (r: string) => p.startsWith(r === "/" ? "/" : `${r}/`);
    return (
      (await places).some((r) => p === r.path || (r.tree && under(r.path))) ||
      rules.some((r) => r instanceof RegExp && r.test(p))
    );
  };
  // followLast: the operation follows a link at the path itself (umount).
  const check = async (op: string, path: string, followLast = false): Promise<void> => {
    const named = isAbsolute(path) ? resolve(path) : undefined;
    const p =
      named &&
      (followLast ? await real(host, named) : join(await real(host, dirname(named)), basename(named)));
    if (p && (await allowed(p))) return;
    throw new ExitError(
      `refusing to ${op} ${path}${p && p !== path ? ` (${p})` : ""}: it is outside the lab's directories. ` +
        `The journal entry ${what} names it (was the journal edited, or copied from another lab?); ` +
        "nothing was done to it, and the entry stays in the journal",
    );
  };
  // f, once the paths `paths` picks from its arguments passed the check.
  const guard =
    <A extends unknown[], T>(op: string, paths: (a: A) => string[], f: (...a: A) => Promise<T>) =>
    async (...a: A): Promise<T> => {
      for (const p of paths(a)) await check(op, p);
      return f(...a);
    };
  const f = host.fs;
  const first = <A extends [string, ...unknown[]]>(a: A) => [a[0]];
  const fs: HostFs = {
    ...f,
    rm: guard("remove", first, (p: string) => f.rm(p)),
    rmdir: guard("remove", first, (p: string) => f.rmdir(p)),
    rename: guard(
      "move or replace",
      (a) => a,
      (a: string, b: string) => f.rename(a, b),
    ),
    writeFile: guard("write", first, (p: string, d: string | Uint8Array, m?: number) => f.writeFile(p, d, m)),
    createExclusive: guard("write", first, (p: string, d: string, m?: number) => f.createExclusive(p, d, m)),
    openWrite: guard("write", first, (p: string, a: boolean) => f.openWrite(p, a)),
    chmod: guard("change the mode of", first, (p: string, m: number) => f.chmod(p, m)),
    chown: guard("change the owner of", first, (p: string, u: number, g: number) => f.chown(p, u, g)),
  };
  return {
    ...host,
    fs,
    // A confined tree (a container's root) is changed only within the lab's places.
    root(dir, label, idShift) {
      const r = host.root(dir, label, idShift);
      const inDir = () => [dir];
      return {
        ...rootReads(r),
        writeFile: guard("write in", inDir, (p: string, d: string, o: Parameters<RootFs["writeFile"]>[2]) =>
          r.writeFile(p, d, o),
        ),
        mkdir: guard("write in", inDir, (p: string, o: Parameters<RootFs["mkdir"]>[1]) => r.mkdir(p, o)),
        chown: guard("write in", inDir, (p: string, u: number, g: number) => r.chown(p, u, g)),
        symlink: guard("write in", inDir, (t: string, p: string) => r.symlink(t, p)),
        remove: guard("write in", inDir, (p: string) => r.remove(p)),
      };
    },
    async exec(cmd, args, opts) {
      // A command that removes or unmounts its operands, run as it is or as another user
      // (`setpriv … -- rm -f -- PATH`: the lab's owner's files).
      const [c, a] =
        cmd === "setpriv" && args.includes("--")
          ? [args[args.indexOf("--") + 1] ?? "", args.slice(args.indexOf("--") + 2)]
          : [cmd, args];
      const op = REMOVERS[basename(c)];
      if (op) {
        const operands = a.includes("--")
          ? a.slice(a.indexOf("--") + 1)
          : a.filter((x) => !x.startsWith("-"));
        for (const t of operands) await check(op, t, op === "unmount");
      }
      return host.exec(cmd, args, opts);
    },
  };
}
