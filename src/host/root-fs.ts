// The confined-root file API over the real kernel: every path inside a tree that aplspawn does not
// trust (a booted container's root, whose upper layer its root user controls; an image's tree) is
// resolved from a directory fd of that root, one component at a time, each opened O_PATH|O_NOFOLLOW
// and checked with fstat before the next. Node has no openat(2), so a component is looked up as
// /proc/self/fd/<dirfd>/<name>: the kernel jumps to the very directory the fd holds (a magic link)
// and looks the name up there, which is openat(dirfd, name) — never the host path string again.
//
// Why this design and not the others (issue: containment):
// - openat2(RESOLVE_IN_ROOT) is not reachable from Node without a native addon, and following a
//   container's links even inside its root lets an unprivileged container user steer root's writes
//   (a link in their home to /etc/sudoers.d). So links are never followed, in any component: a link
//   where a directory or a file to read is expected is an error naming the container and path. The
//   one exception is the final component of a write, which is replaced by a rename in its directory
//   (a link there is replaced, not followed). No stock Debian path aplspawn touches is a link.
// - A host-owned layer between the image and the upper would keep the host from writing into the
//   upper at all, but the container's upper still shadows it (a deleted authorized_keys stays
//   deleted), and the checks must read the merged view anyway; the reads need this API either way.
// - Mount points: a directory on another device than the root is refused (RESOLVE_NO_XDEV).
// - Magic links (/proc/PID/root in a copied tree) are links, hence never followed.
// - Only regular files are read, checked through the fd they were opened with (never a FIFO, a
//   device or a socket: an O_PATH open has no side effect and cannot block), and only up to a size.
import { randomBytes } from "node:crypto";
import { constants as C } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fs from "node:fs/promises";
import { type EntryKind, type Owner, type RootFs, RootFsError } from "./host.js";

// Linux's O_PATH (the generic value; Node does not export it). An O_PATH fd can be fstat'ed and
// used as a directory to look names up in, but opening it has no effect on the file itself.
const O_PATH = 0o10000000;
const LOOKUP = O_PATH | C.O_NOFOLLOW;
/** Text files read from a root are small (passwd, authorized_keys): anything larger is refused. */
const DEFAULT_MAX_BYTES = 1024 * 1024;

const at = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;
const self = (fh: FileHandle) => `/proc/self/fd/${fh.fd}`;

function kindOf(s: import("node:fs").Stats): EntryKind {
  if (s.isFile()) return "file";
  if (s.isDirectory()) return "dir";
  if (s.isSymbolicLink()) return "link";
  return "other";
}

const KIND_WORDS: Record<EntryKind, string> = {
  file: "a regular file",
  dir: "a directory",
  link: "a symbolic link",
  other: "a FIFO, socket or device",
};

/** Split a root-relative path into names; ".." and empty names are refused (paths are ours). */
function names(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new Error(`internal: path ${JSON.stringify(path)} holds ".."`);
  return parts;
}

const shown = (parts: string[]) => `/${parts.join("/")}`;

// Open one name in an open directory without following it; undefined when absent.
async function lookup(dir: FileHandle, name: string): Promise<FileHandle | undefined> {
  try {
    return await fs.open(at(dir, name), LOOKUP);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * The confined view of the tree at `root`; `label` names it in errors ("container aplspawn10").
 * `idShift`: the host id of the tree's uid and gid 0 (a container in a user namespace whose root is
 * host uid idShift): every owner written is the tree's own id plus idShift.
 */
export function rootFs(root: string, label: string, idShift = 0): RootFs {
  return new ConfinedRoot(root, label, idShift);
}

class ConfinedRoot implements RootFs {
  constructor(
    readonly root: string,
    private readonly label: string,
    private readonly idShift: number,
  ) {}

  /** The host id of one of the tree's own ids. */
  private host(id: number | undefined): number {
    return (id ?? 0) + this.idShift;
  }

  private fail(path: string, what: string): never {
    throw new RootFsError(this.label, path, what);
  }

  private async openRoot(): Promise<{ fh: FileHandle; dev: number }> {
    const fh = await fs.open(this.root, LOOKUP | C.O_DIRECTORY);
    return { fh, dev: (await fh.stat()).dev };
  }

  /**
   * Walk to the directory `parts` names; with `create`, missing directories are made (each with
   * mode and owner) and listed in `created`. Returns undefined when a directory is missing.
   */
  private async walkDir(
    parts: string[],
    create?: { mode: number; uid: number; gid: number; created: string[] },
  ): Promise<FileHandle | undefined> {
    const { fh: rootFh, dev } = await this.openRoot();
    let cur = rootFh;
    let done = false;
    try {
      for (let i = 0; i < parts.length; i++) {
        const name = parts[i] as string;
        let next = await lookup(cur, name);
        let made = false;
        if (!next && create) {
          made = await fs.mkdir(at(cur, name), create.mode).then(
            () => true,
            (e: NodeJS.ErrnoException) => {
              if (e.code !== "EEXIST") throw e;
              return false;
            },
          );
          next = await lookup(cur, name);
        }
        if (!next) return undefined;
        const st = await next.stat();
        if (!st.isDirectory()) {
          await next.close();
          this.fail(
            shown(parts.slice(0, i + 1)),
            `is ${KIND_WORDS[kindOf(st)]}, where a directory is expected`,
          );
        }
        if (st.dev !== dev) {
          await next.close();
          this.fail(shown(parts.slice(0, i + 1)), "is a mount point (another filesystem than the root's)");
        }
        if (made && create) {
          // Owner and mode through the fd of the directory just checked (never the name again: a
          // container may swap it for a link meanwhile).
          await fs.chown(self(next), this.host(create.uid), this.host(create.gid));
          await fs.chmod(self(next), create.mode);
          create.created.push(shown(parts.slice(0, i + 1)));
        }
        await cur.close();
        cur = next;
      }
      done = true;
      return cur;
    } finally {
      if (!done) await cur.close();
    }
  }

  /** Run `fn` with the directory of `path` open, and the final name. */
  private async inParent<T>(
    path: string,
    fn: (dir: FileHandle, name: string, parts: string[]) => Promise<T>,
    missing: () => T,
    create?: { mode: number; uid: number; gid: number },
  ): Promise<T> {
    const parts = names(path);
    const name = parts.pop();
    if (name === undefined) throw new Error("internal: the root itself has no parent");
    const dir = await this.walkDir(parts, create && { ...create, created: [] });
    if (!dir) return missing();
    try {
      return await fn(dir, name, [...parts, name]);
    } finally {
      await dir.close();
    }
  }

  /**
   * Put a new entry at `path`: made by `make` under a temp name in the same directory (missing
   * parents are made, root's), then renamed over the name, which rename never follows: a file or
   * link there is replaced. A directory there is refused.
   */
  private async replace(
    path: string,
    what: string,
    make: (dir: FileHandle, tmp: string) => Promise<unknown>,
  ): Promise<void> {
    await this.inParent(
      path,
      async (dir, name, parts) => {
        const existing = await lookup(dir, name);
        if (existing) {
          const st = await existing.stat().finally(() => existing.close());
          if (st.isDirectory()) this.fail(shown(parts), `is a directory, where ${what} is to be written`);
        }
        const tmp = `.${name}.aplspawn-${randomBytes(4).toString("hex")}.tmp`;
        try {
          await make(dir, tmp);
          await fs.rename(at(dir, tmp), at(dir, name));
        } catch (e) {
          await fs.unlink(at(dir, tmp)).catch(() => undefined);
          throw e;
        }
      },
      () => this.fail(path, "has a missing parent directory"),
      { mode: 0o755, uid: 0, gid: 0 },
    );
  }

  /**
   * Run `fn` on the entry at `path` (opened O_PATH, never followed; closed after), its directory,
   * its name and its path's names; undefined when the entry or a directory on the way is missing.
   */
  private async atEntry<T>(
    path: string,
    fn: (ref: FileHandle, dir: FileHandle, name: string, parts: string[]) => Promise<T>,
  ): Promise<T | undefined> {
    return this.inParent(
      path,
      async (dir, name, parts) => {
        const ref = await lookup(dir, name);
        if (!ref) return undefined;
        try {
          return await fn(ref, dir, name, parts);
        } finally {
          await ref.close();
        }
      },
      () => undefined,
    );
  }

  async kind(path: string): Promise<EntryKind | undefined> {
    return this.atEntry(path, async (ref) => kindOf(await ref.stat()));
  }

  async readFile(path: string, maxBytes = DEFAULT_MAX_BYTES): Promise<string | undefined> {
    return this.atEntry(path, async (ref, _dir, _name, parts) => {
      const st = await ref.stat();
      if (!st.isFile())
        this.fail(shown(parts), `is ${KIND_WORDS[kindOf(st)]}, where a regular file is expected`);
      if (st.size > maxBytes)
        this.fail(shown(parts), `is ${st.size} bytes, more than the ${maxBytes} aplspawn reads`);
      // Reopen the very inode the O_PATH fd holds (not the name again), without blocking.
      const fh = await fs.open(self(ref), C.O_RDONLY | C.O_NONBLOCK | C.O_NOCTTY);
      try {
        const buf = Buffer.alloc(maxBytes + 1);
        let n = 0;
        for (;;) {
          const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
          if (bytesRead === 0) break;
          n += bytesRead;
          if (n > maxBytes) this.fail(shown(parts), `grew past the ${maxBytes} bytes aplspawn reads`);
        }
        return buf.subarray(0, n).toString("utf8");
      } finally {
        await fh.close();
      }
    });
  }

  async writeFile(path: string, data: string, o: Owner & { mode: number }): Promise<void> {
    await this.replace(path, "a file", async (dir, tmp) => {
      const fh = await fs.open(at(dir, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      try {
        await fh.writeFile(data);
        await fh.chown(this.host(o.uid), this.host(o.gid));
        await fh.chmod(o.mode);
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  }

  async mkdir(path: string, o: Owner & { mode: number }): Promise<string[]> {
    const created: string[] = [];
    const dir = await this.walkDir(names(path), { mode: o.mode, uid: o.uid ?? 0, gid: o.gid ?? 0, created });
    await dir?.close();
    return created;
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    await this.inParent(
      path,
      async (dir, name, parts) => {
        const fh = await lookup(dir, name);
        if (!fh) this.fail(shown(parts), "does not exist");
        try {
          const st = await (fh as FileHandle).stat();
          if (!st.isFile() && !st.isDirectory())
            this.fail(
              shown(parts),
              `is ${KIND_WORDS[kindOf(st)]}: aplspawn changes the owner of files and directories only`,
            );
          // chown through the magic link acts on the inode the fd holds.
          await fs.chown(self(fh as FileHandle), this.host(uid), this.host(gid));
        } finally {
          await fh?.close();
        }
      },
      () => this.fail(path, "does not exist"),
    );
  }

  async readlink(path: string): Promise<string | undefined> {
    return this.atEntry(path, async (ref, dir, name) => {
      if (!(await ref.stat()).isSymbolicLink()) return undefined;
      // readlink does not follow its last component: the link's own text, a string only.
      return fs.readlink(at(dir, name)).catch(() => undefined);
    });
  }

  async symlink(target: string, path: string): Promise<void> {
    await this.replace(path, "a link", async (dir, tmp) => {
      await fs.symlink(target, at(dir, tmp));
      if (this.idShift) await fs.lchown(at(dir, tmp), this.host(0), this.host(0));
    });
  }

  async list(path: string): Promise<string[]> {
    const dir = await this.walkDir(names(path));
    if (!dir) return [];
    try {
      return await fs.readdir(self(dir));
    } finally {
      await dir.close();
    }
  }

  async remove(path: string): Promise<void> {
    await this.inParent(
      path,
      async (dir, name, parts) => {
        const fh = await lookup(dir, name);
        if (!fh) return;
        const st = await fh.stat().finally(() => fh.close());
        if (st.isDirectory()) this.fail(shown(parts), "is a directory, where a file is to be removed");
        // unlink does not follow its last component.
        await fs.unlink(at(dir, name)).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== "ENOENT") throw e;
        });
      },
      () => undefined,
    );
  }
}
