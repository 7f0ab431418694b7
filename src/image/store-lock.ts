// One lock per image file, host-wide: labs sharing an image store get, verify, build and purge an
// image one at a time. The others wait, saying for whom, and then find it there (and verified) and
// reuse it. A lock the kernel holds (flock, Host.lockFile): it goes with its holder however that
// ends, so a killed download never blocks the next one.
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { errorMessage } from "../errors.js";
import type { HeldLock } from "../host/host.js";
import { HOST_LOCK_OPTIONS } from "../host/lock.js";
import type { TaskContext } from "../runner/task.js";

/**
 * Where the lock of an image file lives (the one place that says so). Named for the image's path:
 * labs of one store name the same file the same way.
 */
export function imageLockPath(image: string): string {
  return `/run/aplspawn/image-${createHash("sha256").update(image).digest("hex").slice(0, 16)}.lock`;
}

/** What the lock file says of its holder (for the message of whoever waits). */
interface Holder {
  pid: number;
  lab?: string;
  what: string;
  since: string;
}

async function holderOf(ctx: TaskContext, path: string): Promise<string> {
  try {
    const h = JSON.parse(await ctx.host.fs.readFile(path)) as Holder;
    if (typeof h.pid !== "number") return "another aplspawn";
    return `${h.lab ? `lab ${h.lab}` : "another aplspawn"} (PID ${h.pid}, ${h.what} since ${h.since})`;
  } catch {
    return "another aplspawn";
  }
}

// Taken, the holder says who it is: written in place (the kernel's lock is on this very inode).
async function announce(ctx: TaskContext, path: string, held: HeldLock, what: string): Promise<HeldLock> {
  try {
    const me: Holder = {
      pid: process.pid,
      ...(ctx.lab ? { lab: ctx.lab } : {}),
      what,
      since: new Date(ctx.host.now()).toISOString(),
    };
    const f = await ctx.host.fs.openWrite(path, false);
    await f.write(Buffer.from(JSON.stringify(me)));
    await f.close();
    return held;
  } catch (e) {
    await held.release();
    throw e;
  }
}

const WAIT_STEP_MS = 10_000;

/**
 * Run f holding the image's lock. While another process holds it, wait as long as it does (it may be
 * downloading gigabytes; it lets go when it ends, however it ends), saying once whom this run waits
 * for and then how long it has waited. A dry run changes nothing: it takes no lock.
 */
export async function withImageLock<T>(
  ctx: TaskContext,
  image: string,
  what: string,
  f: () => Promise<T>,
): Promise<T> {
  if (ctx.dryRun) return f();
  const path = imageLockPath(image);
  const opts = { ...HOST_LOCK_OPTIONS, signal: ctx.signal };
  let held = await ctx.host.lockFile(path, { ...opts, waitMs: 0 });
  if (!held) {
    const t0 = ctx.host.now();
    ctx.info(
      `Waiting for ${await holderOf(ctx, path)} to finish with ${basename(image)} (one lab at a time gets, verifies or deletes an image)`,
    );
    while (!held) {
      held = await ctx.host.lockFile(path, { ...opts, waitMs: WAIT_STEP_MS });
      if (!held)
        ctx.progress(`Still waiting for ${basename(image)} (${Math.round((ctx.host.now() - t0) / 1000)} s)`);
    }
    ctx.info(`Waited ${Math.round((ctx.host.now() - t0) / 1000)} s for ${basename(image)}`);
  }
  const mine = await announce(ctx, path, held, what);
  try {
    return await f();
  } finally {
    await mine.release().catch((e: unknown) => ctx.info(`Releasing ${path}: ${errorMessage(e)}`));
  }
}

/** Run f holding the image's lock if no one else holds it now; undefined (f not run) when someone does. */
export async function ifImageUnlocked<T>(
  ctx: TaskContext,
  image: string,
  what: string,
  f: () => Promise<T>,
): Promise<T | undefined> {
  if (ctx.dryRun) return f();
  const path = imageLockPath(image);
  const held = await ctx.host.lockFile(path, { ...HOST_LOCK_OPTIONS, signal: ctx.signal, waitMs: 0 });
  if (!held) return undefined;
  const mine = await announce(ctx, path, held, what);
  try {
    return await f();
  } finally {
    await mine.release();
  }
}
