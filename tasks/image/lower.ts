// image.lower: mount the image's root read-only at the lower directory, the overlayfs lowerdir every
// container shares: the loop device's filesystem (type read from its superblock), or a read-only
// bind mount of a directory image. Rollback unmounts it, never lazily: a busy lower layer is an error.
import { z } from "zod";
import { ExitError } from "../../src/errors.js";
import type { HostContext } from "../../src/host/host.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import type { RunContext } from "../../src/host/run-scope.js";
import {
  inspectImage,
  lowerState,
  lowerVerdict,
  missingImage,
  mountIsDevice,
  requireRoot,
  rootLoopsIn,
} from "../../src/image/attach-state.js";
import { backs, fileIdentity } from "../../src/image/image-host.js";
import { withLoopClaims } from "../../src/image/loop-claims.js";
import { loopDebug } from "../../src/image/loop-debug.js";
import { listLoops, loopChange, seenLoops } from "../../src/image/loop-list.js";
import {
  detectFilesystem,
  readOnlyMountOptions,
  SUPERBLOCK_PROBE_BYTES,
} from "../../src/image/superblock.js";
import type { LoopInfo } from "../../src/image/system-info.js";
import { defineTask } from "../../src/runner/task.js";
import {
  type LoopParams,
  type LoopRecord,
  loopParamsSchema,
  loopRecordPath,
  readLoopRecord,
} from "./loop.js";

/** Journaled before the mount: whether the directory is ours to remove. */
const lowerIntentSchema = z.object({ createdDir: z.boolean() });
export type LowerIntent = z.infer<typeof lowerIntentSchema>;

/** What was mounted. */
const lowerResultSchema = z.object({
  lowerDir: z.string(),
  /** The loop device mounted, or null for a bind-mounted directory image. */
  device: z.string().nullable(),
  fs: z.string(),
});
export type LowerResult = z.infer<typeof lowerResultSchema>;

async function isBindOf(ctx: HostContext, lowerDir: string, image: string): Promise<boolean> {
  const [a, b] = [await fileIdentity(ctx, lowerDir), await fileIdentity(ctx, image)];
  return !!a && !!b && a.ino === b.ino && a.dev === b.dev;
}

// Is the mount at lowerDir the one this task made (from its result, or, after a crash, the image's)?
async function isOurs(ctx: RunContext, p: LoopParams, result: LowerResult | undefined): Promise<boolean> {
  const m = mountAt(await readMounts(ctx.host), p.lowerDir);
  if (!m) return false;
  if (result)
    return result.device === null ? isBindOf(ctx, p.lowerDir, p.image) : mountIsDevice(ctx, m, result.device);
  if (await isBindOf(ctx, p.lowerDir, p.image)) return true;
  const id = await fileIdentity(ctx, p.image);
  for (const l of await listLoops(ctx)) {
    const sameFile = id ? backs(l, id, l.offset) : l.backFile === p.image;
    if (sameFile && (await mountIsDevice(ctx, m, l.name))) return true;
  }
  return false;
}

/**
 * When the device image.loop attached for this lab (its record) is no longer that: detached by
 * something outside aplspawn before it was mounted (aplspawn detaches only devices it claimed for
 * the lab undoing them, under the loop lock), its number maybe another lab's by now. The error that
 * says so, or undefined while the device is still this lab's.
 */
async function lostDevice(
  ctx: RunContext,
  lowerDir: string,
  rec: LoopRecord | undefined,
): Promise<ExitError | undefined> {
  if (!rec || rec.autoclear) return undefined;
  const now = (await listLoops(ctx)).find((l) => l.name === rec.device);
  const owner = await withLoopClaims(ctx, async (v) => v.owner(rec.device));
  let what: string;
  if (!now) what = "is no longer attached";
  else if (!backs(now, rec, rec.offset)) what = `holds ${now.backFile} now`;
  else if ((owner ?? lowerDir) !== lowerDir) what = `is another lab's now (${owner})`;
  else return undefined;
  loopDebug(ctx, "lower-lost", { device: rec.device, lowerDir, what });
  return new ExitError(
    `${rec.device}, which image.loop attached for this lab, ${what}: something outside aplspawn detached it before it was mounted (\`losetup -d\`?). Run again to attach another; APLSPAWN_DEBUG=loops logs every loop event of aplspawn's`,
  );
}

/** Mount the image's root read-only at the lower directory. */
export const imageLower = defineTask({
  kind: "image.lower",
  journaled: { params: loopParamsSchema, intent: lowerIntentSchema, result: lowerResultSchema },
  title: (p) => `Mounting image root as lower overlayFS layer ${p.lowerDir}`,
  status: (p) => ({ name: "Checking if loop (image root) is mounted to lower", target: p.lowerDir }),
  async check(ctx, p) {
    return lowerVerdict(await lowerState(ctx, p.image, p.lowerDir));
  },
  async prepare(ctx, p) {
    return { createdDir: !(await ctx.host.fs.exists(p.lowerDir)) };
  },
  async run(ctx, p) {
    const s = await inspectImage(ctx, p.image);
    if (s.kind === "missing") throw missingImage(p.image);
    await ctx.host.fs.mkdir(p.lowerDir, 0o755);
    const existing = mountAt(await readMounts(ctx.host), p.lowerDir);
    if (existing)
      throw new ExitError(
        `${p.lowerDir} is already a mount point (of ${existing.source}): run \`aplspawn run stop\` first`,
      );
    let result: LowerResult;
    if (s.kind === "dir") {
      // util-linux makes "bind,ro" a bind mount followed by a read-only remount.
      await ctx.host.exec("mount", ["--bind", "-o", "ro", "--", p.image, p.lowerDir], { signal: ctx.signal });
      result = { lowerDir: p.lowerDir, device: null, fs: "bind" };
    } else {
      const img = requireRoot(p.image, s);
      // Whether any device holds the image, as the run saw it last (image.loop's attach made it
      // look anew); which one is this lab's, the devices and claims under the loop lock say below.
      const all = await seenLoops(ctx);
      const rootsIn = (l: LoopInfo[]) =>
        rootLoopsIn(l, img).filter((x) => !p.loopDevice || x.name === p.loopDevice);
      let loops = rootsIn(all);
      const rec = await readLoopRecord(ctx, p.lowerDir);
      if (loops.length === 0) {
        loopDebug(ctx, "lower-none", {
          lowerDir: p.lowerDir,
          ino: img.identity.ino,
          offset: img.layout.offset,
          record: rec ?? null,
          loops: all,
        });
        throw (
          (await lostDevice(ctx, p.lowerDir, rec)) ??
          new ExitError(
            `No loop device holds the root partition of ${p.image}: the image.loop task attaches it (\`aplspawn run spawn\`)`,
          )
        );
      }
      // The device this lab's image.loop attached (its record; else, the record lost in a crash, the
      // device claimed for this lab). Never one of another lab's: labs share images.
      const claimed = await withLoopClaims(ctx, async (v) => {
        loops = rootsIn(v.loops);
        return v.claims;
      });
      const owner = (l: { name: string }) => claimed.get(l.name)?.lowerDir ?? p.lowerDir;
      const device = loops.find(
        (l) =>
          owner(l) === p.lowerDir &&
          ((l.name === rec?.device && l.backIno === rec.ino && l.offset === rec.offset) ||
            claimed.has(l.name)),
      )?.name;
      loopDebug(ctx, device ? "lower-pick" : "lower-none", {
        device: device ?? null,
        lowerDir: p.lowerDir,
        record: rec ?? null,
        candidates: loops.map((l) => ({ name: l.name, owner: claimed.get(l.name)?.lowerDir ?? null })),
      });
      if (!device)
        throw (
          (await lostDevice(ctx, p.lowerDir, rec)) ??
          new ExitError(
            `No loop device attached for this lab holds the root partition of ${p.image}: the image.loop task attaches it (\`aplspawn run spawn\`)`,
          )
        );
      try {
        const fs = detectFilesystem(await ctx.host.fs.readBytes(device, 0, SUPERBLOCK_PROBE_BYTES)) ?? img.fs;
        await ctx.host.exec("mount", ["-t", fs, "-o", readOnlyMountOptions(fs), "--", device, p.lowerDir], {
          signal: ctx.signal,
        });
        result = { lowerDir: p.lowerDir, device, fs };
      } catch (e) {
        // Detached under us between the pick and the mount: say that rather than mount's exit 32.
        throw (await lostDevice(ctx, p.lowerDir, rec).catch(() => undefined)) ?? e;
      }
    }
    const m = mountAt(await readMounts(ctx.host), p.lowerDir);
    if (m && !m.options.includes("ro")) {
      await ctx.host.exec("mount", ["-o", "remount,bind,ro", "--", p.lowerDir], { signal: ctx.signal });
      const again = mountAt(await readMounts(ctx.host), p.lowerDir);
      if (!again?.options.includes("ro"))
        throw new ExitError(`${p.lowerDir} stays writable after a read-only remount`);
    }
    // Mark the device autoclear: the kernel frees it when its last mount goes, even if that mount
    // dies with its mount namespace (a killed test, a crashed host tool) and no rollback ever runs.
    // On a mounted device `losetup --detach` only sets that flag.
    if (result.device) {
      const device = result.device;
      await loopChange(ctx, () => ctx.host.exec("losetup", ["--detach", device], { signal: ctx.signal }));
      loopDebug(ctx, "handover", { device: result.device, lowerDir: p.lowerDir });
      // image.loop's record says so: its rollback must not detach what may soon be someone else's.
      const rec = await readLoopRecord(ctx, p.lowerDir);
      if (rec?.device === result.device)
        await ctx.host.fs.writeFile(
          loopRecordPath(p.lowerDir),
          `${JSON.stringify({ ...rec, autoclear: true })}\n`,
          0o600,
        );
    }
    ctx.info(`${result.device ?? p.image} mounted read-only at ${p.lowerDir} (${result.fs})`);
    return result;
  },
  async rollback(ctx, { params, intent, result }) {
    if (mountAt(await readMounts(ctx.host), params.lowerDir)) {
      if (!(await isOurs(ctx, params, result))) {
        // Nothing of ours is mounted there (already undone, then something else mounted): leave it.
        if (result === undefined) return;
        throw new ExitError(
          `${params.lowerDir} is mounted from something aplspawn did not mount there; leaving it`,
        );
      }
      loopDebug(ctx, "unmount", { lowerDir: params.lowerDir, device: result?.device ?? null });
      // Its device is autoclear: the kernel frees it with this mount.
      const r = await loopChange(ctx, () =>
        ctx.host.exec("umount", ["--", params.lowerDir], { signal: ctx.signal, allowFail: true }),
      );
      // Gone on its own in the meantime (its namespace died, someone unmounted it): done.
      if (r.exitCode !== 0 && (await isOurs(ctx, params, result).catch(() => true)))
        throw new ExitError(
          /busy/i.test(r.stderr)
            ? `Cannot unmount ${params.lowerDir}: it is busy (a container or a process still uses it; \`fuser -vm ${params.lowerDir}\` shows which)`
            : `Cannot unmount ${params.lowerDir}: ${r.stderr.trim()}`,
        );
    }
    if (
      intent?.createdDir &&
      !mountAt(await readMounts(ctx.host), params.lowerDir) &&
      (await ctx.host.fs.stat(params.lowerDir))?.isDirectory &&
      (await ctx.host.fs.readdir(params.lowerDir)).length === 0
    )
      await ctx.host.fs.rm(params.lowerDir);
  },
  rollbackTitle: (p) => `Unmounting lower overlayFS layer ${p.lowerDir}`,
});
