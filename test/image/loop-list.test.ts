// How often a run looks at the loop devices (src/image/loop-list.ts): what the run saw serves its
// checks until the run itself changes a device; a look that must be fresh begins after it was asked
// for, and the loop lock's holder never decides on what the run saw before it took the lock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runContext } from "../../src/host/run-scope.js";
import { CLAIMS_DIR, withLoopClaims } from "../../src/image/loop-claims.js";
import { listLoops, loopChange, seenLoops } from "../../src/image/loop-list.js";
import { loopsOf } from "../../src/lab/disk.js";
import { recordingHost } from "../support/recording-host.js";

interface Dev {
  name: string;
  ino: string;
  /** Its backing file is deleted (losetup shows " (deleted)" after the path). */
  deleted?: boolean;
}

// A recording host whose `losetup --list` reports `devs` as they are when the command runs; a test
// may hold the next listing until it says so (gate).
function loopHost() {
  const h = recordingHost();
  const devs: Dev[] = [];
  let gate: Promise<void> | undefined;
  h.onExec = async (cmd, args) => {
    if (cmd !== "losetup" || args[0] !== "--list") return undefined;
    const g = gate;
    gate = undefined;
    const now = devs.map((d) => ({
      name: d.name,
      "back-file": d.deleted ? "/f (deleted)" : "/f",
      "back-ino": d.ino,
      "back-maj:min": "8:1",
      offset: 0,
      sizelimit: 0,
      ro: true,
      autoclear: false,
    }));
    await g;
    return { stdout: JSON.stringify({ loopdevices: now }) };
  };
  const looks = () => h.calls.filter((c) => c.op === "exec" && c.detail.startsWith("losetup --list")).length;
  const hold = () => {
    let open = () => {};
    gate = new Promise((r) => {
      open = r;
    });
    return open;
  };
  return { h, devs, looks, hold };
}

const names = (l: { name: string }[]) => l.map((d) => d.name);

test("what the run saw serves it until the run attaches or detaches a device; listLoops always looks", async () => {
  const { h, devs, looks } = loopHost();
  const ctx = runContext(h);
  devs.push({ name: "/dev/loop1", ino: "1" });
  assert.deepEqual(names(await seenLoops(ctx)), ["/dev/loop1"]);
  devs.push({ name: "/dev/loop2", ino: "2" }); // another lab's, unseen by this run's checks
  assert.deepEqual(names(await seenLoops(ctx)), ["/dev/loop1"]);
  assert.equal(looks(), 1, "two checks, one look");
  assert.deepEqual(names(await listLoops(ctx)), ["/dev/loop1", "/dev/loop2"], "a fresh look");
  assert.equal(looks(), 2);
  await loopChange(ctx, async () => devs.push({ name: "/dev/loop3", ino: "3" }));
  assert.deepEqual(names(await seenLoops(ctx)), ["/dev/loop1", "/dev/loop2", "/dev/loop3"]);
  assert.equal(looks(), 3, "the run's own change is never hidden from it");
  await assert.rejects(loopChange(ctx, async () => Promise.reject(new Error("losetup failed"))));
  await seenLoops(ctx);
  assert.equal(looks(), 4, "a change that failed half-way may have changed something: looked again");
  const other = runContext(h);
  await seenLoops(other);
  assert.equal(looks(), 5, "another run looks for itself");
});

test("a look running while the run changes a device is not what the run saw after the change", async () => {
  const { h, devs, looks, hold } = loopHost();
  const ctx = runContext(h);
  const open = hold();
  const before = seenLoops(ctx); // begins before the attach, answers after it
  await new Promise((r) => setImmediate(r));
  await loopChange(ctx, async () => devs.push({ name: "/dev/loop7", ino: "7" }));
  open();
  assert.deepEqual(names(await before), []);
  assert.deepEqual(names(await seenLoops(ctx)), ["/dev/loop7"], "the attach is seen");
  assert.equal(looks(), 2);
});

test("a fresh look begins after it is asked for; those who ask meanwhile share the next one", async () => {
  const { h, devs, looks, hold } = loopHost();
  const ctx = runContext(h);
  const open = hold();
  const running = listLoops(ctx);
  await new Promise((r) => setImmediate(r));
  devs.push({ name: "/dev/loop4", ino: "4" });
  const [a, b, c] = [listLoops(ctx), listLoops(ctx), seenLoops(ctx)];
  open();
  assert.deepEqual(names(await running), []);
  assert.deepEqual(names(await a), ["/dev/loop4"], "not the look that began before the ask");
  assert.deepEqual(names(await b), ["/dev/loop4"]);
  assert.deepEqual(names(await c), [], "a check may take the look running (the run changed nothing)");
  assert.equal(looks(), 2, "three askers, one more look");
});

test("the loop lock's holder looks again: another lab's device attached and claimed since is not pruned", async () => {
  const { h, devs } = loopHost();
  const ctx = runContext(h);
  assert.deepEqual(await seenLoops(ctx), []);
  // Another lab attaches a device of the shared image and claims it, after this run's look.
  devs.push({ name: "/dev/loop9", ino: "9" });
  const claim = { device: "/dev/loop9", lowerDir: "/other/lower", ino: "9", dev: "8:1", offset: 0 };
  h.dirs.add(CLAIMS_DIR);
  h.files.set(`${CLAIMS_DIR}/loop9`, Buffer.from(`${JSON.stringify(claim)}\n`));
  const owner = await withLoopClaims(ctx, async (v) => v.owner("/dev/loop9"));
  assert.equal(owner, "/other/lower", "the other lab's claim was taken for a stale one");
  assert.ok(h.files.has(`${CLAIMS_DIR}/loop9`), "the other lab's claim file was removed");
});

test("a container's disk is never held by a device whose backing file is deleted, even when a look from before the kernel freed it shows the inode number the new file took", async () => {
  const { h, devs } = loopHost();
  const ctx = runContext(h);
  // The old disk file, deleted while its device (detached lazily: autoclear) still held it.
  devs.push({ name: "/dev/loop11", ino: "7", deleted: true });
  assert.deepEqual(names(await seenLoops(ctx)), ["/dev/loop11"]);
  // The kernel frees loop11 and the new disk file gets inode 7: the run's look is older than both.
  devs.length = 0;
  assert.deepEqual(
    await loopsOf(ctx, { ino: "7", dev: "8:1" }),
    [],
    "the stale look's deleted file is not the disk",
  );
  // A live file's device is found, from a seen look as from a fresh one.
  devs.push({ name: "/dev/loop12", ino: "7" });
  assert.deepEqual(names(await loopsOf(ctx, { ino: "7", dev: "8:1" }, true)), ["/dev/loop12"]);
  assert.deepEqual(names(await loopsOf(ctx, { ino: "7", dev: "8:1" })), ["/dev/loop12"]);
});
