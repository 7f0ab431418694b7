// container.disk-loop: the container's file system (container.disk) attached to a loop device that
// losetup finds free (never a fixed one). The file is the container's alone, so every device backed
// by it is the container's: a run killed before its result was journaled leaves nothing that the
// rollback cannot find, and no other lab's device is ever taken for it. Rollback detaches them,
// never one still mounted, and waits until the kernel has let them go.
import { z } from "zod";
import { KnownAfterApply } from "../../src/errors.js";
import { poll } from "../../src/host/poll.js";
import { mountsOfDevice } from "../../src/image/image-host.js";
import { loopChange } from "../../src/image/loop-list.js";
import { LOSETUP_RACE } from "../../src/image/system-info.js";
import { type DiskIdentity, diskIdentity, loopsOf } from "../../src/lab/disk.js";
import { defineTask, met, type TaskContext, undoUnlessGone, unmet } from "../../src/runner/task.js";

/** Journaled parameters. */
const diskLoopParamsSchema = z.object({ name: z.string(), file: z.string() });
export type DiskLoopParams = z.infer<typeof diskLoopParamsSchema>;
/** The device, and the file it holds (by inode: the name may be gone by the rollback). */
const diskLoopResultSchema = z.object({ device: z.string(), ino: z.string(), dev: z.string() });
export type DiskLoopResult = z.infer<typeof diskLoopResultSchema>;

const ATTEMPTS = 6;

/** Attach the file; another process may take the device losetup found first: then try again. */
async function attach(ctx: TaskContext, p: DiskLoopParams, id: DiskIdentity): Promise<string> {
  let last = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const r = await loopChange(ctx, () =>
      ctx.host.exec("losetup", ["--find", "--show", "--", p.file], { signal: ctx.signal, allowFail: true }),
    );
    if (ctx.dryRun) throw new KnownAfterApply("the loop device losetup picks");
    const device = r.stdout.trim();
    if (r.exitCode === 0 && (await loopsOf(ctx, id, true)).some((l) => l.name === device)) return device;
    last = r.stderr.trim() || `${device} does not hold ${p.file}`;
    if (r.exitCode !== 0 && !LOSETUP_RACE.test(last)) break;
    await ctx.host.sleep(50 * attempt, ctx.signal);
  }
  throw new Error(`could not attach ${p.file} to a loop device: ${last}`);
}

/** Attaches the container's file system to a loop device. */
export const containerDiskLoop = defineTask({
  kind: "container.disk-loop",
  journaled: { params: diskLoopParamsSchema, result: diskLoopResultSchema },
  title: (p) => `Attaching the file system of container ${p.name} to a loop device`,
  rollbackTitle: (p) => `Detaching the file system of container ${p.name} from its loop device`,
  async check(ctx, p) {
    const id = await diskIdentity(ctx, p.file);
    const l = id && (await loopsOf(ctx, id))[0];
    return l ? met(`${p.file} on ${l.name}`) : unmet(`${p.file} is on no loop device`);
  },
  async run(ctx, p) {
    const id = await diskIdentity(ctx, p.file);
    if (!id) {
      if (ctx.dryRun) throw new KnownAfterApply("the loop device losetup picks");
      throw new Error(`${p.file} does not exist`);
    }
    // One a run killed before its result was journaled attached: taken again, not a second one.
    // Looked at now: a device the run saw earlier may have been freed (autoclear) and be another's.
    const had = (await loopsOf(ctx, id, true))[0];
    return { device: had ? had.name : await attach(ctx, p, id), ...id };
  },
  async rollback(ctx, { params: p, result }) {
    const id = result ?? (await diskIdentity(ctx, p.file));
    if (!id) return;
    // Looked at now: a device name the run saw earlier may be another lab's by now.
    for (const l of await loopsOf(ctx, id, true)) {
      const mounts = await mountsOfDevice(ctx, l.name);
      if (mounts.length > 0)
        throw new Error(
          `${l.name} (${p.file}) is still mounted at ${mounts.map((m) => m.mountPoint).join(", ")}; unmount it first`,
        );
      await undoUnlessGone(
        () => loopChange(ctx, () => ctx.host.exec("losetup", ["--detach", l.name], { signal: ctx.signal })),
        async () => (await loopsOf(ctx, id, true)).some((x) => x.name === l.name),
      );
    }
    // losetup -d only marks a device something still holds open (autoclear): the kernel frees it
    // once the last holder lets go. A container's mount namespace in a user namespace of its own
    // (containers.privateUsers) was seen to hold the file system for some seconds past the
    // container's end: waited for, then left to the kernel, never an error while it is not mounted
    // here (container.disk deletes the file meanwhile: the device holds the inode until it goes).
    const gone = await poll(ctx.host, { timeoutMs: 30_000, everyMs: 100, signal: ctx.signal }, async () =>
      (await loopsOf(ctx, id, true)).length === 0 ? true : undefined,
    );
    const left = gone || ctx.dryRun ? [] : await loopsOf(ctx, id, true);
    if (left.some((l) => !l.autoclear))
      throw new Error(
        `${p.file} is still on a loop device after \`losetup --detach\`: something holds it open`,
      );
    if (left.length > 0)
      ctx.info(`${left.map((l) => l.name).join(", ")} is released by the kernel once its last user lets go`);
  },
});
