// Locks the kernel holds (flock(2)) on a descriptor of aplspawn's own. Node has no flock call, so
// flock(1) makes the call on our descriptor, handed to it as its fd 3, and exits: a flock belongs
// to the open file description, not to the process that asked for it, so it stays once flock(1)
// is gone, and goes when we close the descriptor or die. No helper process lives on beside us that
// a signal could end while we still work: the one that did (flock running cat, in our process
// group) was killed by a terminal's ^C, and the lock was free while the run rolled back.
// The lock's directory is ours alone (owned by us, no access for group or others, not a link):
// another local user can neither open a lock file to take or block it, nor put one in our way.
import { spawn } from "node:child_process";
import * as fsCb from "node:fs";
import * as fs from "node:fs/promises";
import { dirname } from "node:path";
import { promisify } from "node:util";
import { CommandError, formatCommand, type HeldLock, type LockFileOptions } from "./host.js";

const openFd = promisify(fsCb.open);
const fstat = promisify(fsCb.fstat);
const closeFd = promisify(fsCb.close);

/** flock(1)'s exit code when the lock is held by someone else (after the wait, if any). */
const CONFLICT = 75;
// Our descriptor's number in flock(1) (stdio 0-2, then it).
const CHILD_FD = 3;

/** Take an exclusive flock on the file at path (made 0600 if missing): see Host.lockFile. */
export async function lockFile(path: string, o: LockFileOptions): Promise<HeldLock | undefined> {
  await privateDir(dirname(path));
  const deadline = Date.now() + o.waitMs;
  for (;;) {
    o.signal?.throwIfAborted();
    let fd: number;
    try {
      fd = await openLock(path);
    } catch (e) {
      // The directory went with another holder's release (removeEmptyDir): make it again.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      await privateDir(dirname(path));
      continue;
    }
    let locked: boolean;
    try {
      locked = await flock(fd, deadline - Date.now(), o.signal);
      // Locked, but perhaps on a file its last holder removed as it let go (removeOnRelease): that
      // is no lock; the file now at path is the one to take.
      if (locked && (await sameFile(fd, path))) return held(fd, path, o);
    } catch (e) {
      await closeFd(fd);
      throw e;
    }
    await closeFd(fd);
    if (!locked) return undefined;
  }
}

/**
 * Make the directory if it is missing (one level, 0700) and check it is ours alone: owned by us,
 * no access for group or others, a directory and not a link to one.
 */
async function privateDir(dir: string): Promise<void> {
  let st: fsCb.Stats | undefined;
  while (!st) {
    await fs.mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    // Gone again between the two (another holder's release removed it, empty): make it again.
    st = await fs.lstat(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
  }
  const me = process.geteuid?.() ?? 0;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
  if (st.isSymbolicLink())
    throw new Error(`${dir} is a symbolic link; aplspawn keeps its locks only in a directory of its own`);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory; aplspawn keeps its locks there`);
  if (st.uid !== me || (st.mode & 0o077) !== 0)
    throw new Error(
      `${dir} (owner uid ${st.uid}, mode ${mode}) is not ${me === 0 ? "root" : `uid ${me}`}'s alone; another user could take or block aplspawn's locks there. Remove it (aplspawn makes it again, 0700) or make it so`,
    );
}

// O_NOFOLLOW: a link at path fails the open; the directory is ours, so none should be there.
async function openLock(path: string): Promise<number> {
  const fd = await openFd(
    path,
    fsCb.constants.O_RDWR | fsCb.constants.O_CREAT | fsCb.constants.O_NOFOLLOW,
    0o600,
  );
  const st = await fstat(fd).catch(async (e: unknown) => {
    await closeFd(fd);
    throw e;
  });
  if (!st.isFile()) {
    await closeFd(fd);
    throw new Error(`${path} is not a regular file; it cannot be a lock of aplspawn's`);
  }
  return fd;
}

/**
 * flock(1) locks our descriptor and exits: true when locked, false when another holder kept it
 * (after waitMs, or at once when waitMs <= 0). flock(1) runs in a session of its own, so a signal
 * to our process group (^C) does not end a wait midway; aborting signal kills it and throws.
 */
async function flock(fd: number, waitMs: number, signal: AbortSignal | undefined): Promise<boolean> {
  const wait = waitMs > 0 ? ["--wait", (waitMs / 1000).toFixed(3)] : ["--nonblock"];
  const argv = ["--exclusive", "--conflict-exit-code", String(CONFLICT), ...wait, String(CHILD_FD)];
  const child = spawn("flock", argv, { stdio: ["ignore", "ignore", "pipe", fd], detached: true });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const onAbort = () => {
    // Only a process that started: Node turns kill() of one that did not into kill(0, SIGTERM).
    if (typeof child.pid === "number" && child.pid > 0) child.kill();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const [code, spawnError] = await new Promise<[number | null, Error | undefined]>((resolve) => {
    child.once("exit", (c) => resolve([c, undefined]));
    child.once("error", (e) => resolve([null, e]));
  }).finally(() => signal?.removeEventListener("abort", onAbort));
  // Even after an exit 0, an abort wins: the caller closes the descriptor, which lets go.
  signal?.throwIfAborted();
  if (code === 0) return true;
  if (code === CONFLICT) return false;
  throw new CommandError(
    formatCommand("flock", argv),
    code ?? undefined,
    stderr,
    spawnError ? "Cannot take a lock: util-linux's flock is needed" : "Cannot take a lock",
    spawnError ? { cause: spawnError } : undefined,
  );
}

// Whether the descriptor is the file now at path (the same inode; a link there is not).
async function sameFile(fd: number, path: string): Promise<boolean> {
  const [mine, there] = await Promise.all([fstat(fd), fs.lstat(path).catch(() => undefined)]);
  return there !== undefined && there.ino === mine.ino && there.dev === mine.dev;
}

function held(fd: number, path: string, o: LockFileOptions): HeldLock {
  let released: Promise<void> | undefined;
  return {
    release() {
      released ??= (async () => {
        let removed = false;
        try {
          // Removed while still held: whoever waits on this file then finds it gone and retries.
          if (o.removeOnRelease && (await sameFile(fd, path))) {
            await fs.rm(path, { force: true });
            removed = true;
          }
        } finally {
          await closeFd(fd);
        }
        // The directory goes too if that left it empty (rmdir(2) takes only an empty one: a lock
        // file another holder made there keeps it).
        if (removed && o.removeEmptyDir)
          await fs.rmdir(dirname(path)).catch((e: NodeJS.ErrnoException) => {
            if (!["ENOTEMPTY", "EEXIST", "ENOENT", "EBUSY"].includes(e.code ?? "")) throw e;
          });
      })();
      return released;
    },
  };
}
