// One run per lab at a time, and short host-wide critical sections: locks the kernel holds (flock)
// on a descriptor of aplspawn's own, whose file says who holds them. A lock lives exactly as long
// as the process that took it: no signal to its process group frees it while that process goes on
// (Host.lockFile). Lock files live in directories of root's alone: the lab's directory, and
// HOST_LOCK_DIR for the host-wide ones.

import { ExitError, errorMessage, LockedError } from "../errors.js";
import type { HeldLock, Host, LockFileOptions } from "./host.js";
import { procStat } from "./proc.js";

/**
 * Where the host-wide locks live (claims.lock, holds.lock, loops.lock, userns.lock, image locks):
 * root's alone, 0700, made on first use and refused if anyone else could reach it. A lock's file
 * goes when it is released, and the directory with the last one (HOST_LOCK_OPTIONS).
 */
export const HOST_LOCK_DIR = "/run/aplspawn";

/** How every host-wide lock is taken: its file, and the directory it leaves empty, go on release. */
export const HOST_LOCK_OPTIONS = { removeOnRelease: true, removeEmptyDir: true } as const;

// A lock that cannot be taken for a reason of the host (no flock, a directory that is not root's
// alone) is the user's to fix; an abort is the run's own and passes as it is.
async function take(host: Host, path: string, o: LockFileOptions): Promise<HeldLock | undefined> {
  try {
    return await host.lockFile(path, o);
  } catch (e) {
    if (o.signal?.aborted) throw e;
    throw new ExitError(`Cannot take the lock ${path}: ${errorMessage(e)}`);
  }
}

interface LockInfo {
  pid: number;
  /** The owner's start time in clock ticks (/proc/PID/stat field 22), against PID reuse. */
  start: string;
  command: string;
  since: string;
}

async function procStart(host: Host, pid: number): Promise<string | undefined> {
  const st = await procStat(host, pid);
  return st ? String(st.start) : undefined;
}

/** Whether the process that wrote a lock still runs. */
async function lockOwnerAlive(host: Host, info: { pid: number; start: string }): Promise<boolean> {
  return (await procStart(host, info.pid)) === info.start;
}

/** A held lock; release() lets go of it and removes its file. */
export interface Lock {
  /** Set when the file named a holder that died holding it (it never let go). */
  tookOverFrom?: LockInfo;
  release(): Promise<void>;
}

/**
 * Take the lab's lock, or fail at once naming the holder. The kernel holds it (flock(2), see
 * Host.lockFile), so it goes with its holder however that ends: nothing is taken over, and no two
 * processes ever hold it. The file says who holds it (for the message of whoever finds it held).
 */
export async function acquireLock(host: Host, path: string, command: string): Promise<Lock> {
  const deadline = host.now() + 1000;
  let held: HeldLock | undefined;
  for (;;) {
    held = await take(host, path, { waitMs: 0, removeOnRelease: true });
    if (held) break;
    // Held. Its holder writes who it is right after taking it, and a holder letting go removes the
    // file: without a name yet, look again (or take it) in a moment.
    const holder = await readLock(host, path);
    if (typeof holder === "object" || host.now() >= deadline) {
      const who =
        typeof holder === "object"
          ? `PID ${holder.pid} (${holder.command}, since ${holder.since})`
          : "another process";
      throw new LockedError(
        `The lab is locked by ${who}; wait for it to finish, or stop it. Lock file: ${path}`,
      );
    }
    await host.sleep(10);
  }
  try {
    // A released lock's file is removed: one that names a holder is a dead holder's.
    const before = await readLock(host, path);
    const me: LockInfo = {
      pid: process.pid,
      start: (await procStart(host, process.pid)) ?? "",
      command,
      since: new Date().toISOString(),
    };
    // Written in place: the kernel's lock is on this very inode.
    const f = await host.fs.openWrite(path, false);
    await f.write(Buffer.from(JSON.stringify(me)));
    await f.close();
    const dead = typeof before === "object" && !(await lockOwnerAlive(host, before)) ? before : undefined;
    return { ...(dead ? { tookOverFrom: dead } : {}), release: () => held.release() };
  } catch (e) {
    await held.release();
    throw e;
  }
}

/** The lock's holder; "missing" when there is no lock file, "corrupt" when it cannot be parsed. */
async function readLock(host: Host, path: string): Promise<LockInfo | "missing" | "corrupt"> {
  let text: string;
  try {
    text = await host.fs.readFile(path);
  } catch {
    return "missing";
  }
  try {
    const info = JSON.parse(text) as LockInfo;
    return typeof info.pid === "number" ? info : "corrupt";
  } catch {
    return "corrupt";
  }
}

/** Run f holding a host-wide lock held only for a few file operations: wait for it (up to 30 s). */
export async function withHostLock<T>(
  host: Host,
  path: string,
  label: string,
  signal: AbortSignal | undefined,
  f: () => Promise<T>,
): Promise<T> {
  // Removed on release (nothing stays in HOST_LOCK_DIR, nor the directory): a waiter that held the
  // old file takes the new one (Host.lockFile checks the inode); with the few labs that wait here
  // at once, that round is cheap.
  const held = await take(host, path, {
    waitMs: 30_000,
    ...HOST_LOCK_OPTIONS,
    ...(signal ? { signal } : {}),
  });
  if (!held) throw new LockedError(`${label}: ${path} stayed locked for 30 s`);
  try {
    return await f();
  } finally {
    await held.release();
  }
}
