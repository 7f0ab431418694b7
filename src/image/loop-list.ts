// The loop devices as `losetup --list` shows them, looked at as few times as a run can afford.
// A run's checks and lookups of its own devices take what the run saw last (seenLoops), until the
// run itself attaches, detaches or unmounts one (loopChange): then the next look is a new one.
// What another lab does meanwhile never reaches those answers' decisions: each names only devices
// backed by this lab's own files (a container's disk, a device this run's claim names), and every
// decision that must see the host as it is now (claiming and pruning claims under the loop lock,
// detaching, mounting a device or taking one found earlier again, waiting for a device to go,
// checking a device just attached) asks listLoops, a look begun after it asked: a device the run
// saw may have been freed since (autoclear) and its number be another lab's. Concurrent askers share looks (src/host/shared-look.ts).
import { type RunContext, runKey } from "../host/run-scope.js";
import { freshLook, type Looks } from "../host/shared-look.js";
import { LOSETUP_COLUMNS, type LoopInfo, parseLosetupJson } from "./system-info.js";

interface LoopLooks extends Looks<LoopInfo[]> {
  /** How many times the run changed the loop devices (loopChange). */
  changes: number;
  /** The newest look begun, and how many changes there had been when it began. */
  seen?: { changes: number; loops: Promise<LoopInfo[]> };
}
const looksKey = runKey<LoopLooks>("loop devices");
const looks = (ctx: RunContext) => ctx.memo(looksKey, () => ({ changes: 0 }));

/** Every loop device in use now: a `losetup --list` begun after this call. */
export function listLoops(ctx: RunContext): Promise<LoopInfo[]> {
  const s = looks(ctx);
  return freshLook(s, () => {
    const seen = {
      changes: s.changes,
      loops: ctx.host
        .exec("losetup", ["--list", "--json", "-O", LOSETUP_COLUMNS], { readOnly: true, signal: ctx.signal })
        .then((r) => parseLosetupJson(r.stdout)),
    };
    s.seen = seen;
    seen.loops.catch(() => {
      if (s.seen === seen) s.seen = undefined;
    });
    return seen.loops;
  });
}

/**
 * The loop devices as the run last saw them, when it changed none since (else a new look). For
 * what this run's own devices are, never for a decision about someone else's.
 */
export function seenLoops(ctx: RunContext): Promise<LoopInfo[]> {
  const s = looks(ctx);
  return s.seen?.changes === s.changes ? s.seen.loops : listLoops(ctx);
}

/** Run f, which attaches, detaches or unmounts a loop device: what the run saw before is stale after. */
export async function loopChange<T>(ctx: RunContext, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } finally {
    looks(ctx).changes++;
  }
}
