// image.loop: attach the image's root partition to a loop device, read-only, at the offset and size
// read from the partition table (no partition scanning: not every host has it). The device is
// journaled; rollback detaches exactly that device, and only while it still holds this image.

import { basename, dirname, join } from "node:path";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { poll } from "../../src/host/poll.js";
import {
  inspectImage,
  lowerState,
  missingImage,
  mountIsDevice,
  requireRoot,
} from "../../src/image/attach-state.js";
import { backs, fileIdentity, type HostCtx, listLoops, mountsOfDevice } from "../../src/image/image-host.js";
import { describeLayout } from "../../src/image/partition-table.js";
import { formatBytes } from "../../src/image/progress.js";
import { ExitError } from "../../src/runner/errors.js";
import { defineTask, undoUnlessGone } from "../../src/runner/task.js";

/** Parameters of image.loop. */
export interface LoopParams {
  image: string;
  /** The lower directory (the attach is complete when the image's root is mounted there). */
  lowerDir: string;
  /** image.loopDevice: use this device rather than a free one. */
  loopDevice?: string;
}

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
export type LoopResult =
  | { device: null }
  | { device: string; offset: number; sizelimit: number; ino: string; dev: string };

const ATTEMPTS = 6;
// losetup's words when another process took the device it found (`--find` is not atomic).
const RACE = /busy|resource temporarily unavailable|already in use|no such device|could not find any free/i;

/**
 * Detach one device if it still holds the image's root; never while it is mounted. With wait (the
 * default: the device is ours), wait until it is gone and fail when it is not.
 */
async function detachLoop(
  ctx: HostCtx,
  t: { device: string; ino: string; dev: string; offset: number },
  o: { wait: boolean } = { wait: true },
): Promise<void> {
  const find = async () => (await listLoops(ctx)).find((l) => l.name === t.device && backs(l, t, t.offset));
  const holds = async () => (await find()) !== undefined;
  const dev = await find();
  if (!dev) return; // already detached, or reused by someone else since: not ours
  const mounts = await mountsOfDevice(ctx, t.device);
  if (mounts.length > 0)
    throw new ExitError(
      `${t.device} is still mounted at ${mounts.map((m) => m.mountPoint).join(", ")}: unmount it first (\`aplspawn run stop\`)`,
    );
  // An autoclear device (image.lower marks it) is freed by the kernel once unmounted, in the
  // background: asking again only races that release (the device can vanish under the command).
  if (!dev.autoclear)
    await undoUnlessGone(
      () => ctx.host.exec("losetup", ["--detach", t.device], { signal: ctx.signal }),
      holds,
    );
  if (!o.wait) return;
  // losetup -d only marks a device that something holds open: wait until it is really gone. Another
  // lab on the same image may be reading its superblock for a moment (seen in the suite under load).
  const gone = await poll(ctx.host, { timeoutMs: 30_000, everyMs: 100, signal: ctx.signal }, async () =>
    (await holds()) ? undefined : true,
  );
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
  ctx: HostCtx,
  t: { device: string; ino: string; dev: string; offset: number },
  lowerDir: string,
): Promise<void> {
  const m = mountAt(await readMounts(ctx.host), lowerDir);
  if (m && (await mountIsDevice(ctx, m, t.device)))
    throw new ExitError(
      `${t.device} is still mounted at ${lowerDir}: unmount it first (\`aplspawn run stop\`)`,
    );
  await poll(ctx.host, { timeoutMs: 10_000, everyMs: 100, signal: ctx.signal }, async () =>
    (await listLoops(ctx)).some((l) => l.name === t.device && backs(l, t, t.offset) && l.autoclear)
      ? undefined
      : true,
  );
}

/** The record, if there is one. */
export async function readLoopRecord(ctx: HostCtx, lowerDir: string): Promise<LoopRecord | undefined> {
  const f = loopRecordPath(lowerDir);
  if (!(await ctx.host.fs.exists(f))) return undefined;
  try {
    return JSON.parse(await ctx.host.fs.readFile(f)) as LoopRecord;
  } catch {
    return undefined;
  }
}

/** Devices that the records of the other labs in the same workdir name (labs may share an image). */
async function otherLabsDevices(ctx: HostCtx, lowerDir: string): Promise<Set<string>> {
  const lab = dirname(lowerDir);
  const workdir = dirname(lab);
  const found = new Set<string>();
  for (const other of await ctx.host.fs.readdir(workdir).catch(() => [] as string[])) {
    const dir = join(workdir, other);
    if (dir === lab) continue;
    const rec = await readLoopRecord(ctx, join(dir, basename(lowerDir)));
    if (rec) found.add(rec.device);
  }
  return found;
}

// Remove the record when it names the device undone (or, after a crash, whatever it names).
async function removeRecord(
  ctx: HostCtx,
  lowerDir: string,
  device: string | null | undefined,
): Promise<void> {
  const rec = await readLoopRecord(ctx, lowerDir);
  if (device === undefined || device === null || rec?.device === device || !rec)
    await ctx.host.fs.rm(loopRecordPath(lowerDir));
}

/** Attach the image's root partition. */
export const imageLoop = defineTask<LoopParams, LoopResult>({
  kind: "image.loop",
  title: () => "Mounting image root partition to loop device",
  async check(ctx, p) {
    const s = await lowerState(ctx, p.image, p.lowerDir);
    return s.image.kind === "dir" || (s.isImage && s.readOnly);
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
      const info = (await listLoops(ctx)).find((l) => l.name === rec.device);
      const free = (await mountsOfDevice(ctx, rec.device)).length === 0;
      if (info && backs(info, img.identity, offset) && info.ro && info.sizelimit === size && free) {
        ctx.info(
          `${p.image}: ${describeLayout(img.layout, img.fs)} → ${rec.device} (attached by an earlier run)`,
        );
        return { ...rec, sizelimit: size };
      }
    }
    const opts = ["--show", "--read-only", "--offset", String(offset), "--sizelimit", String(size)];
    let lastError = "";
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const args = p.loopDevice ? [...opts, p.loopDevice, p.image] : ["--find", ...opts, p.image];
      const r = await ctx.host.exec("losetup", args, { signal: ctx.signal, allowFail: true });
      if (r.exitCode === 0) {
        const device = r.stdout.trim();
        const info = (await listLoops(ctx)).find((l) => l.name === device);
        if (info && backs(info, img.identity, offset) && info.ro && info.sizelimit === size) {
          ctx.info(`${p.image}: ${describeLayout(img.layout, img.fs)} → ${device}`);
          const rec: LoopRecord = { device, ino: img.identity.ino, dev: img.identity.dev, offset };
          await ctx.host.fs.mkdir(dirname(p.lowerDir), 0o700);
          await ctx.host.fs.writeFile(loopRecordPath(p.lowerDir), `${JSON.stringify(rec)}\n`, 0o600);
          return { ...rec, sizelimit: size };
        }
        // Someone else's device now: never detach it; try again.
        lastError = `${device} does not hold ${p.image} after losetup (another process took it)`;
      } else {
        lastError = r.stderr.trim() || `losetup exited with ${r.exitCode}`;
        if (p.loopDevice) {
          const holder = (await listLoops(ctx)).find((l) => l.name === p.loopDevice);
          throw new ExitError(
            `Cannot use ${p.loopDevice} (image.loopDevice): ${holder ? `it is in use by ${holder.backFile}` : lastError}`,
          );
        }
        if (!RACE.test(lastError)) throw new ExitError(`losetup failed for ${p.image}: ${lastError}`);
      }
      if (p.loopDevice) break;
      await ctx.host.sleep(50 * attempt, ctx.signal);
    }
    throw new ExitError(
      `Could not attach ${p.image} (${formatBytes(size)} at ${formatBytes(offset)}) to a loop device: ${lastError}`,
    );
  },
  async rollback(ctx, { params, result }) {
    // Handed to the kernel (autoclear): freed with its last mount; its name may be someone else's now.
    const handed = (await readLoopRecord(ctx, params.lowerDir))?.autoclear === true;
    if (result) {
      if (result.device !== null && handed) await releaseHanded(ctx, result, params.lowerDir);
      else if (result.device !== null) await detachLoop(ctx, result);
      await removeRecord(ctx, params.lowerDir, result.device);
      return;
    }
    // run never finished (crash after losetup): the record, written right after losetup, names the
    // device. Without one (a crash in between), detach the unmounted devices of the image that no
    // other lab's record claims; one that stays attached is someone else's, in use (another mount
    // namespace): losetup marked it to go when released, so leave it be.
    const rec = await readLoopRecord(ctx, params.lowerDir);
    await removeRecord(ctx, params.lowerDir, undefined);
    if (rec) {
      if (!handed && (await mountsOfDevice(ctx, rec.device)).length === 0) await detachLoop(ctx, rec);
      return;
    }
    const s = await inspectImage(ctx, params.image).catch(() => undefined);
    if (s?.kind !== "file") return;
    const id = await fileIdentity(ctx, params.image);
    if (!id) return;
    const claimed = await otherLabsDevices(ctx, params.lowerDir);
    for (const l of await listLoops(ctx)) {
      if (!backs(l, id, s.layout.offset) || !l.ro || claimed.has(l.name)) continue;
      if (params.loopDevice && l.name !== params.loopDevice) continue;
      if ((await mountsOfDevice(ctx, l.name)).length > 0) continue;
      await detachLoop(ctx, { device: l.name, ino: id.ino, dev: id.dev, offset: l.offset }, { wait: false });
    }
  },
  rollbackTitle: (p) => `Detaching loop device of image ${p.image}`,
});
