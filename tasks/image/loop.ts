// image.loop: attach the image's root partition to a loop device, read-only, at the offset and size
// read from the partition table (no partition scanning: not every host has it). The device is
// journaled; rollback detaches exactly that device, and only while it still holds this image.
import { dirname } from "node:path";
import { z } from "zod";
import { ExitError, KnownAfterApply } from "../../src/errors.js";
import type { HostContext } from "../../src/host/host.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { poll } from "../../src/host/poll.js";
import type { RunContext } from "../../src/host/run-scope.js";
import {
  inspectImage,
  loopVerdict,
  lowerState,
  missingImage,
  mountIsDevice,
  requireRoot,
} from "../../src/image/attach-state.js";
import { backs, fileIdentity, mountsOfDevice } from "../../src/image/image-host.js";
import { type LoopView, withLoopClaims } from "../../src/image/loop-claims.js";
import { loopDebug } from "../../src/image/loop-debug.js";
import { listLoops, loopChange } from "../../src/image/loop-list.js";
import { describeLayout } from "../../src/image/partition-table.js";
import { formatBytes } from "../../src/image/progress.js";
import { LOSETUP_RACE } from "../../src/image/system-info.js";
import { defineTask, undoUnlessGone } from "../../src/runner/task.js";

/** Parameters of image.loop, and of image.lower after it (one attach: workflows/attach.ts). */
export const loopParamsSchema = z.object({
  image: z.string(),
  /** The lower directory (the attach is complete when the image's root is mounted there). */
  lowerDir: z.string(),
  /** image.loopDevice: use this device rather than a free one. */
  loopDevice: z.string().optional(),
});
export type LoopParams = z.infer<typeof loopParamsSchema>;

/** Where image.loop tells image.lower which device it attached: several labs may share one image. */
export const loopRecordPath = (lowerDir: string) => `${lowerDir}.loop`;

/** What the record holds. */
export interface LoopRecord {
  device: string;
  ino: string;
  dev: string;
  offset: number;
  /**
   * Set by image.lower once it marked the device autoclear: from then on the kernel frees it when
   * its last mount goes, and the same name may soon be another lab's device of the same image (a
   * device can be reused only once freed). So it is never detached by us after that.
   */
  autoclear?: boolean;
}

/** The device attached (null for a directory image: nothing to attach). */
const loopResultSchema = z.union([
  z.object({ device: z.null() }),
  z.object({
    device: z.string(),
    offset: z.number(),
    sizelimit: z.number(),
    ino: z.string(),
    dev: z.string(),
  }),
]);
export type LoopResult = z.infer<typeof loopResultSchema>;

const ATTEMPTS = 6;

type Target = { device: string; ino: string; dev: string; offset: number };

/**
 * Detach one device (the caller holds the loop lock and decided it is ours) if it still holds the
 * image's root; never while it is mounted. Returns whether there is something to wait for.
 */
async function detachNow(ctx: RunContext, v: LoopView, t: Target): Promise<boolean> {
  const dev = v.loops.find((l) => l.name === t.device && backs(l, t, t.offset));
  if (!dev) return false; // already detached, or reused by someone else since: not ours
  const mounts = await mountsOfDevice(ctx, t.device);
  if (mounts.length > 0)
    throw new ExitError(
      `${t.device} is still mounted at ${mounts.map((m) => m.mountPoint).join(", ")}: unmount it first (\`aplspawn run stop\`)`,
    );
  // An autoclear device (image.lower marks it) is freed by the kernel once unmounted, in the
  // background: asking again only races that release (the device can vanish under the command).
  loopDebug(ctx, "detach", { device: t.device, ino: t.ino, offset: t.offset, autoclear: dev.autoclear });
  if (!dev.autoclear)
    await undoUnlessGone(
      () => loopChange(ctx, () => ctx.host.exec("losetup", ["--detach", t.device], { signal: ctx.signal })),
      async () => (await listLoops(ctx)).some((l) => l.name === t.device && backs(l, t, t.offset)),
    );
  return true;
}

/**
 * Wait until a detached device is really gone (losetup -d only marks a device that something holds
 * open; another lab on the same image may be reading its superblock for a moment), and fail when it
 * is not. Outside the loop lock: other labs attach meanwhile.
 */
async function waitGone(ctx: RunContext, t: Target): Promise<void> {
  const gone = await poll(ctx.host, { timeoutMs: 30_000, everyMs: 100, signal: ctx.signal }, async () =>
    (await listLoops(ctx)).some((l) => l.name === t.device && backs(l, t, t.offset)) ? undefined : true,
  );
  loopDebug(ctx, "detach-done", { device: t.device, gone: !!gone });
  if (gone) return;
  throw new ExitError(
    `${t.device} is still attached after \`losetup --detach\`: something holds it open (another mount namespace?); it is freed when released`,
  );
}

/**
 * The undo of a device handed to the kernel (autoclear): never detached by us. While it is still
 * mounted at our lower directory (a busy unmount), that is an error; else it gets a moment to be
 * freed (someone may hold it open briefly, e.g. reading its superblock) and is left be after that:
 * one still there is in use, or already another lab's device of the same image under the same name.
 */
async function releaseHanded(
  ctx: RunContext,
  t: { device: string; ino: string; dev: string; offset: number },
  lowerDir: string,
): Promise<void> {
  const m = mountAt(await readMounts(ctx.host), lowerDir);
  if (m && (await mountIsDevice(ctx, m, t.device)))
    throw new ExitError(
      `${t.device} is still mounted at ${lowerDir}: unmount it first (\`aplspawn run stop\`)`,
    );
  const freed = await poll(ctx.host, { timeoutMs: 10_000, everyMs: 100, signal: ctx.signal }, async () =>
    (await listLoops(ctx)).some((l) => l.name === t.device && backs(l, t, t.offset) && l.autoclear)
      ? undefined
      : true,
  );
  loopDebug(ctx, "handed-released", { device: t.device, lowerDir, freed: !!freed });
}

/** The record, if there is one. */
export async function readLoopRecord(ctx: HostContext, lowerDir: string): Promise<LoopRecord | undefined> {
  const f = loopRecordPath(lowerDir);
  if (!(await ctx.host.fs.exists(f))) return undefined;
  try {
    return JSON.parse(await ctx.host.fs.readFile(f)) as LoopRecord;
  } catch {
    return undefined;
  }
}

// Remove the record when it names the device undone (or, after a crash, whatever it names).
async function removeRecord(
  ctx: HostContext,
  lowerDir: string,
  device: string | null | undefined,
): Promise<void> {
  const rec = await readLoopRecord(ctx, lowerDir);
  if (device === undefined || device === null || rec?.device === device || !rec)
    await ctx.host.fs.rm(loopRecordPath(lowerDir));
}

/** Attach the image's root partition. */
export const imageLoop = defineTask({
  kind: "image.loop",
  journaled: { params: loopParamsSchema, result: loopResultSchema },
  title: () => "Mounting image root partition to loop device",
  status: (p) => ({ name: "Checking if image is mounted correctly to loop device", target: p.image }),
  async check(ctx, p) {
    return loopVerdict(await lowerState(ctx, p.image, p.lowerDir));
  },
  async run(ctx, p) {
    const s = await inspectImage(ctx, p.image);
    if (s.kind === "missing") throw missingImage(p.image);
    if (s.kind === "dir") {
      ctx.info(`${p.image} is a directory tree: no loop device needed`);
      return { device: null };
    }
    const img = requireRoot(p.image, s);
    for (const n of img.layout.notes) ctx.info(n);
    const { offset, size } = img.layout;
    // A run killed after losetup (before the lower mount) left its device, named in the record:
    // take it again rather than attach a second one.
    const rec = await readLoopRecord(ctx, p.lowerDir);
    if (rec && !rec.autoclear && !p.loopDevice) {
      const again = await withLoopClaims(ctx, async (v) => {
        const info = v.loops.find((l) => l.name === rec.device);
        const free = (await mountsOfDevice(ctx, rec.device)).length === 0;
        const ours = (v.owner(rec.device) ?? p.lowerDir) === p.lowerDir;
        if (
          !info ||
          !ours ||
          !free ||
          !backs(info, img.identity, offset) ||
          !info.ro ||
          info.sizelimit !== size
        )
          return false;
        await v.claim({ ...rec, lowerDir: p.lowerDir });
        loopDebug(ctx, "attach-again", { device: rec.device, lowerDir: p.lowerDir });
        return true;
      });
      if (again) {
        ctx.info(
          `${p.image}: ${describeLayout(img.layout, img.fs)} → ${rec.device} (attached by an earlier run)`,
        );
        return { ...rec, sizelimit: size };
      }
    }
    const opts = ["--show", "--read-only", "--offset", String(offset), "--sizelimit", String(size)];
    let lastError = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      // Attach and claim under the loop lock: no other lab's rollback can take the device for an
      // orphan in between (src/image/loop-claims.ts).
      const done = await withLoopClaims(ctx, async (v) => {
        const args = p.loopDevice ? [...opts, p.loopDevice, p.image] : ["--find", ...opts, p.image];
        const r = await loopChange(ctx, () =>
          ctx.host.exec("losetup", args, { signal: ctx.signal, allowFail: true }),
        );
        if (ctx.dryRun) throw new KnownAfterApply("the loop device losetup picks");
        if (r.exitCode === 0) {
          const device = r.stdout.trim();
          const info = (await listLoops(ctx)).find((l) => l.name === device);
          if (info && backs(info, img.identity, offset) && info.ro && info.sizelimit === size) {
            ctx.info(`${p.image}: ${describeLayout(img.layout, img.fs)} → ${device}`);
            loopDebug(ctx, "attach", {
              device,
              image: p.image,
              ino: img.identity.ino,
              offset,
              lowerDir: p.lowerDir,
              attempt,
            });
            const rec: LoopRecord = { device, ino: img.identity.ino, dev: img.identity.dev, offset };
            await v.claim({ ...rec, lowerDir: p.lowerDir });
            await ctx.host.fs.mkdir(dirname(p.lowerDir), 0o700);
            await ctx.host.fs.writeFile(loopRecordPath(p.lowerDir), `${JSON.stringify(rec)}\n`, 0o600);
            return { ...rec, sizelimit: size };
          }
          // Someone else's device now: never detach it; try again.
          lastError = `${device} does not hold ${p.image} after losetup (another process took it)`;
          loopDebug(ctx, "attach-lost", { device, lowerDir: p.lowerDir, attempt });
          return undefined;
        }
        lastError = r.stderr.trim() || `losetup exited with ${r.exitCode}`;
        if (p.loopDevice) {
          const holder = (await listLoops(ctx)).find((l) => l.name === p.loopDevice);
          throw new ExitError(
            `Cannot use ${p.loopDevice} (image.loopDevice): ${holder ? `it is in use by ${holder.backFile}` : lastError}`,
          );
        }
        loopDebug(ctx, "attach-failed", { lowerDir: p.lowerDir, attempt, error: lastError });
        if (!LOSETUP_RACE.test(lastError)) throw new ExitError(`losetup failed for ${p.image}: ${lastError}`);
        return undefined;
      });
      if (done) return done;
      if (p.loopDevice) break;
      await ctx.host.sleep(50 * attempt, ctx.signal);
    }
    throw new ExitError(
      `Could not attach ${p.image} (${formatBytes(size)} at ${formatBytes(offset)}) to a loop device: ${lastError}`,
    );
  },
  async rollback(ctx, { params, result }) {
    if (result?.device === null) return; // a directory image: nothing was attached
    const rec = await readLoopRecord(ctx, params.lowerDir);
    // The device this run attached: its result, else (a run killed before its result was journaled)
    // the record written right after losetup.
    const named: Target | undefined = result ?? rec;
    // Handed to the kernel (autoclear): freed with its last mount; its name may be someone else's now.
    if (named && rec?.autoclear === true && rec.device === named.device) {
      await releaseHanded(ctx, named, params.lowerDir);
      await withLoopClaims(ctx, (v) => v.drop(named.device, params.lowerDir));
      await removeRecord(ctx, params.lowerDir, named.device);
      return;
    }
    // Decided under the loop lock: a device is ours when its claim names this lab, or when no claim
    // does (only an attacher that died before claiming leaves that, see src/image/loop-claims.ts).
    const mine = (v: LoopView, device: string) => (v.owner(device) ?? params.lowerDir) === params.lowerDir;
    const wait = await withLoopClaims(ctx, async (v) => {
      if (named) {
        // Without a result, a mounted device is not this run's to take (image.lower's undo comes first).
        const mounted = !result && (await mountsOfDevice(ctx, named.device)).length > 0;
        const detaching = !mounted && mine(v, named.device) && (await detachNow(ctx, v, named));
        await v.drop(named.device, params.lowerDir);
        return detaching ? named : undefined;
      }
      // Killed between losetup and the record: the image's unmounted devices that are not another
      // lab's are the orphans this run (or another one killed the same way) left.
      const s = await inspectImage(ctx, params.image).catch(() => undefined);
      const id = s?.kind === "file" ? await fileIdentity(ctx, params.image) : undefined;
      if (s?.kind !== "file" || !id) return undefined;
      for (const l of v.loops) {
        if (!backs(l, id, s.layout.offset) || !l.ro || l.autoclear || !mine(v, l.name)) continue;
        if (params.loopDevice && l.name !== params.loopDevice) continue;
        if ((await mountsOfDevice(ctx, l.name)).length > 0) continue;
        loopDebug(ctx, "orphan", {
          device: l.name,
          lowerDir: params.lowerDir,
          claimedBy: v.owner(l.name) ?? null,
        });
        await detachNow(ctx, v, { device: l.name, ino: id.ino, dev: id.dev, offset: l.offset });
        await v.drop(l.name, params.lowerDir);
      }
      return undefined;
    });
    if (wait) await waitGone(ctx, wait);
    await removeRecord(ctx, params.lowerDir, named?.device);
  },
  rollbackTitle: (p) => `Detaching loop device of image ${p.image}`,
});
