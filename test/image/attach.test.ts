// Attaching images for real, inside a private mount namespace: GPT, MBR, bare squashfs, ext4 (bare
// and as the only Linux partition of a GPT), a directory tree. Each ends with zero loop devices and
// the namespace's mounts as they were; failures (faults after each task, a busy lower layer, bad
// images, a pinned device in use) roll back to the same.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { CLAIMS_DIR } from "../../src/image/loop-claims.js";
import { LINUX_DATA_GUID } from "../../src/image/partition-table.js";
import { LOSETUP_COLUMNS, parseLosetupJson } from "../../src/image/system-info.js";
import {
  drive,
  type FileNamespace,
  loopsOf,
  makeDisk,
  makeExt4,
  makeSquashfs,
  makeTree,
  namespacePerFile,
  writeConfig,
} from "../support/image.js";
import { skip, type TestNamespace, tempDir } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

const ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec3b8";
let ns: TestNamespace;
let tmp: FileNamespace["tmp"];
const img: Record<string, string> = {};

namespacePerFile("aplspawn-attach-", async (f) => {
  ({ ns, tmp } = f);
  const t = tmp.path;
  const tree = await makeTree(join(t, "tree"), "tree-marker");
  img.dir = tree;
  img.squashfs = await makeSquashfs(
    await makeTree(join(t, "t-sq"), "squashfs-marker"),
    join(t, "bare.squashfs"),
  );
  img.gpt = await makeDisk(
    await makeSquashfs(await makeTree(join(t, "t-gpt"), "gpt-marker"), join(t, "gpt.squashfs")),
    join(t, "gpt.img"),
    { table: "gpt", extraPartitions: [ESP] },
  );
  img.mbr = await makeDisk(
    await makeSquashfs(await makeTree(join(t, "t-mbr"), "mbr-marker"), join(t, "mbr.squashfs")),
    join(t, "mbr.img"),
    { table: "dos", extraPartitions: ["c"] },
  );
  img.ext4 = await makeExt4(await makeTree(join(t, "t-ext4"), "ext4-marker"), join(t, "bare.ext4"));
  img.ext4gpt = await makeDisk(
    await makeExt4(await makeTree(join(t, "t-ext4gpt"), "ext4gpt-marker"), join(t, "gpt.ext4")),
    join(t, "ext4gpt.img"),
    { table: "gpt", type: LINUX_DATA_GUID, extraPartitions: [ESP] },
  );
});

let n = 0;

/** The claim file of a loop device (src/image/loop-claims.ts). */
const claimOf = (device: string) => join(CLAIMS_DIR, device.replace(/^\/dev\//, ""));
async function lab(image: Record<string, unknown>, name = "t") {
  const dir = await mkdtemp(join(tmp.path, `lab${n++}-`));
  const config = await writeConfig(dir, image, name);
  return { dir, config, lower: join(dir, "work", name, "lower") };
}

async function mountOf(path: string) {
  const r = await ns.run("findmnt", ["-J", "-o", "SOURCE,FSTYPE,OPTIONS", "--mountpoint", path]);
  if (r.exitCode !== 0) return undefined;
  return (JSON.parse(r.stdout) as { filesystems: { source: string; fstype: string; options: string }[] })
    .filesystems[0];
}

async function loopJson(dev: string) {
  const r = await execa("losetup", ["--list", "--json", "-O", "NAME,OFFSET,RO", dev]);
  return (JSON.parse(r.stdout) as { loopdevices: { name: string; offset: number; ro: boolean }[] })
    .loopdevices[0];
}

async function assertClean(
  before: Awaited<ReturnType<TestNamespace["snapshot"]>>,
  image: string,
  lower: string,
) {
  assert.deepEqual(await ns.snapshot(), before, "the namespace's mounts changed");
  assert.deepEqual(await loopsOf(image), [], "loop devices left on the image");
  assert.equal(existsSync(lower), false, "the lower directory was left");
  assert.equal(existsSync(`${lower}.loop`), false, "the loop record was left");
}

const cases: [string, string, string, number][] = [
  ["GPT disk image with a squashfs root partition (after an ESP)", "gpt", "squashfs", 2 * 1048576],
  ["MBR disk image with a Linux partition (after a FAT one)", "mbr", "squashfs", 2 * 1048576],
  ["bare squashfs (no partition table)", "squashfs", "squashfs", 0],
  ["bare ext4 made with mkfs.ext4 -d", "ext4", "ext4", 0],
  ["GPT whose only Linux data partition holds ext4", "ext4gpt", "ext4", 2 * 1048576],
];

for (const [title, key, fstype, offset] of cases) {
  test(`attach, status, re-attach and detach: ${title}`, { skip }, async () => {
    const image = img[key]!;
    const { config, lower } = await lab({ url: `file://${image}` });
    const before = await ns.snapshot();
    const a = await drive(ns, "attach", config);
    assert.equal(a.exitCode, 0, a.stdout + a.stderr);
    assert.match(a.stdout, /\[ OK \] Mounting image root partition to loop device\n/);
    const m = await mountOf(lower);
    assert.ok(m, "nothing mounted at the lower directory");
    assert.equal(m.fstype, fstype);
    assert.match(m.options, /^ro,/);
    const loops = await loopsOf(image);
    assert.equal(loops.length, 1);
    assert.equal(m.source, loops[0]);
    const info = await loopJson(loops[0]!);
    assert.equal(info?.offset, offset);
    assert.equal(info?.ro, true);
    assert.equal((await ns.run("cat", [join(lower, "marker")])).stdout, `${key}-marker`);
    assert.notEqual((await ns.run("touch", [join(lower, "x")])).exitCode, 0, "the lower layer is writable");

    const s = await drive(ns, "status", config);
    assert.equal(s.exitCode, 0, s.stdout);
    const probes = JSON.parse(s.stdout) as { ok: boolean; detail: string }[];
    assert.deepEqual(
      probes.map((p) => [p.ok, p.detail]),
      [
        [true, loops[0]],
        [true, `${loops[0]} (${fstype}, ro)`],
      ],
    );

    const again = await drive(ns, "attach", config);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /0 changed, 2 unchanged/);
    assert.deepEqual(await loopsOf(image), loops, "a second attach made another device");

    const d = await drive(ns, "detach", config);
    assert.equal(d.exitCode, 0, d.stdout + d.stderr);
    assert.match(d.stdout, /UNDONE \] Unmounting lower overlayFS layer/);
    assert.match(d.stdout, /UNDONE \] Detaching loop device/);
    await assertClean(before, image, lower);

    const s2 = await drive(ns, "status", config);
    assert.equal(s2.exitCode, 1);
    assert.deepEqual(
      (JSON.parse(s2.stdout) as { ok: boolean }[]).map((p) => p.ok),
      [false, false],
    );
  });
}

test("a directory tree is bind-mounted read-only, with no loop device", { skip }, async () => {
  const { config, lower } = await lab({ url: `file://${img.dir}` });
  const before = await ns.snapshot();
  const a = await drive(ns, "attach", config);
  assert.equal(a.exitCode, 0, a.stdout + a.stderr);
  // Nothing to attach for a tree: the loop step holds as it is.
  assert.match(a.stdout, /Mounting image root partition to loop device \(unchanged\)/);
  assert.match(a.stdout, /1 changed, 1 unchanged/);
  const m = await mountOf(lower);
  assert.match(m?.options ?? "", /^ro,/);
  assert.equal((await ns.run("cat", [join(lower, "marker")])).stdout, "tree-marker");
  assert.notEqual((await ns.run("touch", [join(lower, "x")])).exitCode, 0);
  const s = await drive(ns, "status", config);
  assert.equal(s.exitCode, 0, s.stdout);
  assert.match((await drive(ns, "attach", config)).stdout, /0 changed, 2 unchanged/);
  const d = await drive(ns, "detach", config);
  assert.equal(d.exitCode, 0, d.stdout + d.stderr);
  await assertClean(before, img.dir!, lower);
  assert.equal(existsSync(join(img.dir!, "marker")), true, "the image tree itself was touched");
});

for (const id of ["image.loop", "image.lower"]) {
  test(`a fault right after ${id} rolls back to nothing`, { skip }, async () => {
    const { config, lower } = await lab({ url: `file://${img.gpt}` });
    const before = await ns.snapshot();
    const r = await drive(ns, "attach", config, { APLSPAWN_FAIL_AFTER: id });
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`injected failure after ${id.replace(".", "\\.")}`));
    assert.match(r.stdout, /UNDONE \] Detaching loop device/);
    await assertClean(before, img.gpt!, lower);
  });
}

// A crash between losetup and the journal's record of its result leaves a device the journal does
// not name. Made here for real: a run stopped (no rollback) after image.loop, its journal then cut
// back to image.loop's begin, as if killed before losetup's answer was journaled.
async function crashAfterLosetup(config: string, journal: string) {
  const r = await drive(ns, "attach", config, { APLSPAWN_FAIL_AFTER: "image.loop", DRIVE_NO_ROLLBACK: "1" });
  assert.equal(r.exitCode, 1, r.stdout + r.stderr);
  const lines = (await readFile(journal, "utf8")).trimEnd().split("\n");
  const loopSeq = lines.map((l) => JSON.parse(l)).findLast((x) => x.entry?.kind === "image.loop")?.entry.seq;
  assert.ok(loopSeq, `no image.loop entry in\n${lines.join("\n")}`);
  const cut = lines.filter((l) => {
    const x = JSON.parse(l);
    return !(x.op === "done" && x.seq === loopSeq);
  });
  assert.equal(
    cut.length,
    lines.length - 1,
    `image.loop's result was not in the journal:\n${lines.join("\n")}`,
  );
  await writeFile(journal, `${cut.join("\n")}\n`);
}

test("a crash right after losetup: down detaches that device (by its record, else by scanning) and no other lab's", {
  skip,
}, async () => {
  const dir = await mkdtemp(join(tmp.path, "crash-"));
  const [a, b] = await Promise.all(
    ["ca", "cb"].map((name) => writeConfig(dir, { url: `file://${img.gpt}` }, name)),
  );
  const journal = join(dir, "work", "ca", "journal.jsonl");
  const record = join(dir, "work", "ca", "lower.loop");
  const before = await ns.snapshot();
  // Lab cb, same image, same workdir: attached and mounted; then one only attached (the window
  // between its losetup and its mount), which a blind scan of the image's devices would take.
  assert.equal((await drive(ns, "attach", b!)).exitCode, 0);
  const bDevice = (await mountOf(join(dir, "work", "cb", "lower")))?.source;
  assert.ok(bDevice);

  // With the record (written right after losetup): down detaches exactly that device.
  await crashAfterLosetup(a!, journal);
  const aDevice = JSON.parse(await readFile(record, "utf8")).device as string;
  assert.deepEqual((await loopsOf(img.gpt!)).sort(), [aDevice, bDevice].sort());
  const d = await drive(ns, "detach", a!);
  assert.equal(d.exitCode, 0, d.stdout + d.stderr);
  assert.deepEqual(await loopsOf(img.gpt!), [bDevice], "lab ca's device stayed, or lab cb's went");

  // Without it (killed between losetup and the record, or even before the claim): the scan detaches
  // ca's device, not the pending one of a lab elsewhere (claimed, as every attach does before it
  // releases the loop lock: the suite's labs, each in its own workdir, took each other's), nor cb's
  // mounted one.
  for (const lost of ["record", "record and claim"]) {
    await crashAfterLosetup(a!, journal);
    const caDevice = JSON.parse(await readFile(record, "utf8")).device as string;
    await rm(record);
    if (lost === "record and claim") await rm(claimOf(caDevice));
    const pending = (
      await execa("losetup", ["--find", "--show", "--read-only", "--offset", "2097152", img.gpt!])
    ).stdout.trim();
    try {
      // Claimed by a lab in another workdir (as the suite's labs are: each its own, one cached image).
      const [l] = parseLosetupJson((await execa("losetup", ["-J", "-O", LOSETUP_COLUMNS, pending])).stdout);
      const lowerDir = join(tmp.path, "other-workdir", "cc", "lower");
      const claim = { device: pending, lowerDir, ino: l?.backIno, dev: l?.backDev, offset: l?.offset };
      await writeFile(claimOf(pending), JSON.stringify(claim));
      const d2 = await drive(ns, "detach", a!);
      assert.equal(d2.exitCode, 0, d2.stdout + d2.stderr);
      assert.deepEqual(
        (await loopsOf(img.gpt!)).sort(),
        [bDevice, pending].sort(),
        `${lost} lost: lab ca's device stayed, or another lab's device was detached`,
      );
    } finally {
      await rm(claimOf(pending), { force: true });
      await execa("losetup", ["-d", pending], { reject: false });
    }
  }
  assert.equal((await drive(ns, "detach", b!)).exitCode, 0);
  assert.deepEqual(await ns.snapshot(), before);
  assert.deepEqual(await loopsOf(img.gpt!), []);
});

test("a busy lower layer is not lazily unmounted: detach fails, keeps the device, then succeeds", {
  skip,
}, async () => {
  const { config, lower } = await lab({ url: `file://${img.gpt}` });
  const before = await ns.snapshot();
  assert.equal((await drive(ns, "attach", config)).exitCode, 0);
  const holder = ns.spawn("tail", ["-f", join(lower, "marker")]);
  try {
    // Wait until tail has the file open.
    await waitFor(
      async () =>
        (await execa("ls", ["-l", `/proc/${holder.pid}/fd`], { reject: false })).stdout.includes("marker"),
      2000,
      20,
    );
    const d = await drive(ns, "detach", config);
    assert.equal(d.exitCode, 1, d.stdout);
    assert.match(d.stdout, /Cannot unmount .*lower: it is busy/);
    assert.match(d.stdout, /still mounted at .*lower: unmount it first/);
    assert.equal((await loopsOf(img.gpt!)).length, 1, "the device went while still mounted");
    assert.ok(await mountOf(lower), "the busy mount disappeared (lazy unmount?)");
  } finally {
    holder.kill("SIGKILL");
    await new Promise((r) => (holder.exitCode !== null ? r(undefined) : holder.once("exit", r)));
  }
  const d2 = await drive(ns, "detach", config);
  assert.equal(d2.exitCode, 0, d2.stdout + d2.stderr);
  await assertClean(before, img.gpt!, lower);
});

test("bad images say what is wrong and leave nothing", { skip }, async () => {
  const t = tmp.path;
  const noRoot = await makeDisk(img.squashfs!, join(t, "noroot.img"), { table: "gpt", type: ESP });
  const corrupt = join(t, "corrupt.img");
  await copyFile(img.gpt!, corrupt);
  const fh = await open(corrupt, "r+");
  const size = (await fh.stat()).size;
  await fh.write(Buffer.alloc(512), 0, 512, 512); // primary header
  await fh.write(Buffer.alloc(512), 0, 512, size - 512); // backup header
  await fh.close();
  const noFs = join(t, "nofs.img");
  await writeFile(join(t, "zeros"), Buffer.alloc(1048576));
  await makeDisk(join(t, "zeros"), noFs, { table: "gpt" });
  const cases: [string, RegExp][] = [
    [join(t, "missing.img"), /not found: run `aplspawn run getimage` first/],
    [noRoot, /no root partition/],
    [corrupt, /corrupt GPT: no GPT signature/],
    [noFs, /holds no known filesystem/],
  ];
  for (const [image, message] of cases) {
    const { config, lower } = await lab({ url: `file://${image}` });
    const before = await ns.snapshot();
    const r = await drive(ns, "attach", config);
    assert.equal(r.exitCode, 1, `${image}: ${r.stdout}`);
    assert.match(r.stderr, message, image);
    assert.deepEqual(await ns.snapshot(), before);
    assert.equal(existsSync(lower), false);
    if (existsSync(image)) assert.deepEqual(await loopsOf(image), []);
  }
});

test("image.loopDevice pins the device; a pinned device in use is refused, untouched", { skip }, async () => {
  const dummy = join(tmp.path, "dummy");
  await writeFile(dummy, Buffer.alloc(1048576));
  const busy = (await execa("losetup", ["--find", "--show", dummy])).stdout.trim();
  try {
    const { config, lower } = await lab({ url: `file://${img.gpt}`, loopDevice: busy });
    const before = await ns.snapshot();
    const r = await drive(ns, "attach", config);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`Cannot use ${busy} \\(image.loopDevice\\): it is in use by ${dummy}`));
    assert.deepEqual(await loopsOf(dummy), [busy], "the other user's device was touched");
    await assertClean(before, img.gpt!, lower);
  } finally {
    await execa("losetup", ["-d", busy]);
  }
  // A free device. Other test files' labs attach devices meanwhile: one may take it first, and then
  // the attach fails clearly (nothing of it changed) and the test tries the next free one.
  let free = "";
  let config = "";
  let lower = "";
  let before = await ns.snapshot();
  for (let attempt = 1; ; attempt++) {
    free = (await execa("losetup", ["--find"])).stdout.trim();
    ({ config, lower } = await lab({ url: `file://${img.gpt}`, loopDevice: free }));
    before = await ns.snapshot();
    const a = await drive(ns, "attach", config);
    if (a.exitCode === 0) break;
    assert.match(
      a.stderr,
      new RegExp(`Cannot use ${free} \\(image.loopDevice\\): it is in use by `),
      a.stdout,
    );
    assert.ok(attempt < 5, `${free} was taken by someone else ${attempt} times in a row`);
    await assertClean(before, img.gpt!, lower);
  }
  assert.deepEqual(await loopsOf(img.gpt!), [free]);
  assert.equal((await mountOf(lower))?.source, free);
  assert.equal((await drive(ns, "detach", config)).exitCode, 0);
  await assertClean(before, img.gpt!, lower);
});

test("labs attaching the same image at once each get their own device, and detach cleanly", {
  skip,
}, async () => {
  const labs = await Promise.all([0, 1, 2, 3].map((i) => lab({ url: `file://${img.gpt}` }, `par${i}`)));
  const before = await ns.snapshot();
  const attached = await Promise.all(labs.map((l) => drive(ns, "attach", l.config)));
  for (const a of attached) assert.equal(a.exitCode, 0, a.stdout + a.stderr);
  const loops = await loopsOf(img.gpt!);
  assert.equal(loops.length, 4);
  const sources = await Promise.all(labs.map(async (l) => (await mountOf(l.lower))?.source));
  assert.deepEqual([...sources].sort(), [...loops].sort(), "each lab mounts the device it attached");
  const detached = await Promise.all(labs.map((l) => drive(ns, "detach", l.config)));
  for (const d of detached) assert.equal(d.exitCode, 0, d.stdout + d.stderr);
  assert.deepEqual(await ns.snapshot(), before);
  assert.deepEqual(await loopsOf(img.gpt!), []);
});

test("image inspect reports where the root is", { skip }, async () => {
  const r = await execa(process.execPath, [
    join(import.meta.dirname, "../../cli/main.js"),
    "image",
    "inspect",
    img.mbr!,
  ]);
  assert.match(r.stdout, /MBR partition 2 at 2\.0 MiB, 1\.0 MiB, squashfs/);
});

test("image inspect of a missing or unreadable file: exit 2, saying which", { skip }, async () => {
  const cli = join(import.meta.dirname, "../../cli/main.js");
  const missing = join(tmp.path, "missing.img");
  for (const json of [[], ["--json"]]) {
    const r = await execa(process.execPath, [cli, ...json, "image", "inspect", missing], { reject: false });
    assert.equal(r.exitCode, 2, r.stderr);
    assert.equal(r.stderr, `aplspawn: ${missing}: does not exist`);
  }
  // Another user, who may not read the image: what can be inspected is, then exit 2. (The CLI as
  // that user can run it: the checkout may sit where only root reaches, /root is 0700.)
  const nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"];
  const user = await ns.userCli(65534);
  const d = await tempDir("aplspawn-inspect-");
  try {
    await chmod(d.path, 0o755);
    const secret = join(d.path, "secret.img");
    await copyFile(img.mbr!, secret);
    await chmod(secret, 0o600);
    const r = await ns.run("setpriv", [...nobody, process.execPath, user.cli, "image", "inspect", secret]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.equal(r.stderr, `aplspawn: ${secret}: cannot be read (permission denied)`);
  } finally {
    await d.cleanup();
    await user.release();
  }
});
