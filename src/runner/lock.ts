// One run per lab at a time: a lock file holding the owner's PID; a lock whose owner is dead is taken over.
import type { Host } from "../host/host.js";
import { procStat } from "../host/proc.js";
import { LockedError } from "./errors.js";

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

/** A held lock; release() removes it. */
export interface Lock {
  /** Set when a lock of a dead process was taken over. */
  tookOverFrom?: LockInfo;
  release(): Promise<void>;
}

/** Take the lab's lock, or fail at once naming the holder. */
export async function acquireLock(host: Host, path: string, command: string): Promise<Lock> {
  const me: LockInfo = {
    pid: process.pid,
    start: (await procStart(host, process.pid)) ?? "",
    command,
    since: new Date().toISOString(),
  };
  let tookOverFrom: LockInfo | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await host.fs.createExclusive(path, JSON.stringify(me), 0o600)) {
      return {
        tookOverFrom,
        async release() {
          const cur = await readLock(host, path);
          if (typeof cur === "object" && cur.pid === me.pid) await host.fs.rm(path);
        },
      };
    }
    const holder = await readLock(host, path);
    // Released since: try again (taking it over now would remove whoever's lock came next).
    if (holder === "missing") continue;
    if (holder !== "corrupt" && (await lockOwnerAlive(host, holder))) {
      throw new LockedError(
        `The lab is locked by PID ${holder.pid} (${holder.command}, since ${holder.since}); ` +
          `wait for it to finish, or stop it. Lock file: ${path}`,
      );
    }
    // A dead owner's lock, or a corrupt one (createExclusive links a complete file into place, so
    // a half-written lock is never seen): take it over, if it is still that very lock.
    if (JSON.stringify(await readLock(host, path)) !== JSON.stringify(holder)) continue;
    if (holder !== "corrupt") tookOverFrom = holder;
    await host.fs.rm(path);
  }
  throw new LockedError(`Could not take the lock ${path}: another process keeps taking it`);
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

/**
 * Run f holding a host-wide lock held only for a few file operations: wait for it (20 ms steps, up
 * to 10 s) rather than fail; a dead holder's lock is taken over.
 */
export async function withHostLock<T>(
  host: Host,
  path: string,
  label: string,
  signal: AbortSignal | undefined,
  f: () => Promise<T>,
): Promise<T> {
  for (let i = 0; ; i++) {
    let lock: Lock;
    try {
      lock = await acquireLock(host, path, label);
    } catch (e) {
      if (!(e instanceof LockedError) || i >= 500) throw e;
      await host.sleep(20, signal);
      continue;
    }
    try {
      return await f();
    } finally {
      await lock.release();
    }
  }
}
