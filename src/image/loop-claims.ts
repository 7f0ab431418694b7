// Which lab attached which loop device. Labs may share one image file, so two labs' devices of the
// same image look alike to losetup; a claim per device, host-wide under /run, says whose it is. A
// device is attached and claimed under one host-wide lock, so whoever holds the lock sees every
// aplspawn device either claimed or not attached yet: an unclaimed device of the image is then an
// orphan (its attacher died between losetup and the claim), never another lab's fresh one.
import { join } from "node:path";
import { withHostLock } from "../host/lock.js";
import type { RunContext } from "../host/run-scope.js";
import { backs } from "./image-host.js";
import { loopDebug } from "./loop-debug.js";
import { listLoops } from "./loop-list.js";
import type { LoopInfo } from "./system-info.js";

/** Where the claims live (root's alone: /run is). */
export const CLAIMS_DIR = "/run/aplspawn-loops";
const LOCK = "/run/aplspawn/loops.lock";

/** One device's claim: the lab's lower directory and what the device was attached to. */
export interface LoopClaim {
  device: string;
  lowerDir: string;
  ino: string;
  dev: string;
  offset: number;
}

const claimPath = (device: string) => join(CLAIMS_DIR, device.replace(/^\/dev\//, "").replace(/\//g, "_"));

/** What the lock holder sees: the loop devices now, and the live claims (stale ones are removed). */
export interface LoopView {
  loops: LoopInfo[];
  claims: Map<string, LoopClaim>;
  /** The lab that claims the device, if a live claim names one. */
  owner(device: string): string | undefined;
  claim(c: LoopClaim): Promise<void>;
  /** Remove the device's claim if it is this lab's. */
  drop(device: string, lowerDir: string): Promise<void>;
}

async function readClaim(ctx: RunContext, file: string): Promise<LoopClaim | undefined> {
  try {
    const c = JSON.parse(await ctx.host.fs.readFile(file)) as LoopClaim;
    return typeof c.device === "string" && typeof c.lowerDir === "string" ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Run f holding the loop lock. A claim is live while its device still backs what it was attached
 * to; the others (a device freed by the kernel, then maybe reused) are removed here. The devices
 * are looked at once the lock is held (never what the run saw before: other labs attach).
 */
export function withLoopClaims<T>(ctx: RunContext, f: (v: LoopView) => Promise<T>): Promise<T> {
  return withHostLock(ctx.host, LOCK, "aplspawn (loop devices)", ctx.signal, async () => {
    await ctx.host.fs.mkdir(CLAIMS_DIR, 0o700);
    const loops = await listLoops(ctx);
    const claims = new Map<string, LoopClaim>();
    for (const n of await ctx.host.fs.readdir(CLAIMS_DIR)) {
      const file = join(CLAIMS_DIR, n);
      const c = await readClaim(ctx, file);
      const l = c && loops.find((x) => x.name === c.device);
      if (c && l && backs(l, c, c.offset) && claimPath(c.device) === file) claims.set(c.device, c);
      else {
        loopDebug(ctx, "claim-stale", {
          file,
          claim: c ?? null,
          now: l ? { backIno: l.backIno, backDev: l.backDev, offset: l.offset } : "not attached",
        });
        await ctx.host.fs.rm(file);
      }
    }
    // The directory goes with its last claim (under the lock: no one adds one meanwhile).
    const dropDirIfEmpty = async () => {
      if ((await ctx.host.fs.readdir(CLAIMS_DIR).catch(() => ["?"])).length === 0)
        await ctx.host.fs.rmdir(CLAIMS_DIR);
    };
    const view: LoopView = {
      loops,
      claims,
      owner: (device) => claims.get(device)?.lowerDir,
      async claim(c) {
        await ctx.host.fs.writeFile(claimPath(c.device), `${JSON.stringify(c)}\n`, 0o600);
        claims.set(c.device, c);
        loopDebug(ctx, "claim", { device: c.device, lowerDir: c.lowerDir, ino: c.ino, offset: c.offset });
      },
      async drop(device, lowerDir) {
        const c = await readClaim(ctx, claimPath(device));
        if (c && c.lowerDir !== lowerDir) {
          loopDebug(ctx, "drop-skipped", { device, lowerDir, claimedBy: c.lowerDir });
          return;
        }
        await ctx.host.fs.rm(claimPath(device));
        claims.delete(device);
        loopDebug(ctx, "drop", { device, lowerDir, hadClaim: !!c });
      },
    };
    try {
      return await f(view);
    } finally {
      await dropDirIfEmpty();
    }
  });
}
