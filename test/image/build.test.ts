// `aplspawn image build` for real: fast runs from a tiny tree (--rootfs) that check the format (GPT,
// root partition type for the architecture, squashfs, SHA256SUMS), the files written into the tree,
// caching, --force, faults and failures; and the full Debian image of ensureTestImage (built once,
// cached under /var/cache/aplspawn-test keyed by its recipe), attached and looked into.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { rootTypeGuid } from "../../src/image/partition-table.js";
import { findChecksum } from "../../src/image/sha256sums.js";
import {
  drive,
  ensureTestImage,
  type FileNamespace,
  loopsOf,
  makeTree,
  namespacePerFile,
  sh,
  sha256Of,
  writeConfig,
  writeFiles,
} from "../support/image.js";
import { type NsSnapshot, skip, type TestNamespace } from "../support/ns.js";

let ns: TestNamespace;
let tmp: FileNamespace["tmp"];
let start: NsSnapshot;
namespacePerFile("aplspawn-build-", (f) => {
  ({ ns, tmp, start } = f);
});

const leftovers = async (dir: string) => (await readdir(dir)).filter((f) => f.includes(".build-"));

async function tinyRootfs(dir: string): Promise<string> {
  const tree = await makeTree(dir, "built-marker");
  await writeFiles(tree, {
    "etc/ssh/ssh_host_ed25519_key": "build host's key\n",
    "etc/ssh/sshd_config": "# kept\n",
    "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
    "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
  });
  return tree;
}

/** Look inside an image by attaching it in the namespace; detaches and checks nothing is left. */
async function inside<T>(image: string, look: (lower: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmp.path, "look-"));
  const config = await writeConfig(dir, { url: `file://${image}` });
  const lower = join(dir, "work/t/lower");
  const a = await drive(ns, "attach", config);
  assert.equal(a.exitCode, 0, a.stdout + a.stderr);
  try {
    return await look(lower);
  } finally {
    const d = await drive(ns, "detach", config);
    assert.equal(d.exitCode, 0, d.stdout + d.stderr);
    assert.deepEqual(await loopsOf(image), []);
    assert.deepEqual(await ns.snapshot(), start);
  }
}

test("image build from a tree: a GPT disk image with a squashfs root partition, and SHA256SUMS", {
  skip,
}, async () => {
  const tree = await tinyRootfs(join(tmp.path, "rootfs"));
  const out = join(tmp.path, "out");
  const image = join(out, "tiny.img");
  const config = await writeConfig(tmp.path, { url: `file://${image}`, build: {} });
  const r = await ns.cli(["-c", config, "image", "build", "--rootfs", tree]);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    /\[ OK \] Building image tiny\.img \(Debian bookworm: debootstrap → squashfs → GPT disk image\)/,
  );

  // The table as sfdisk reads it: one partition, the root type for this architecture, 1 MiB aligned.
  const table = JSON.parse(await sh("sfdisk", ["--json", image])) as {
    partitiontable: { label: string; partitions: { start: number; type: string; name: string }[] };
  };
  assert.equal(table.partitiontable.label, "gpt");
  assert.equal(table.partitiontable.partitions.length, 1);
  const p = table.partitiontable.partitions[0]!;
  assert.equal(p.type.toLowerCase(), rootTypeGuid());
  assert.equal(p.start, 2048);
  assert.match(p.name, /^root-/);
  const inspect = await ns.cli(["image", "inspect", image]);
  assert.match(inspect.stdout, /GPT partition 1 \(root-.*\) at 1\.0 MiB, .*, squashfs/);

  const sums = await readFile(join(out, "SHA256SUMS"), "utf8");
  assert.match(sums, /^[0-9a-f]{64} \*tiny\.img\n$/);
  assert.equal(findChecksum(sums, "tiny.img"), await sha256Of(image));
  assert.deepEqual(await leftovers(out), []);

  await inside(image, async (lower) => {
    const cat = async (f: string) => (await ns.run("cat", [join(lower, f)])).stdout;
    assert.equal(await cat("marker"), "built-marker");
    assert.equal(await cat("etc/hostname"), "aplspawn");
    assert.equal(await cat("etc/machine-id"), "");
    assert.equal(await cat("etc/ssh/sshd_config"), "# kept");
    assert.equal(existsSync(join(tree, "etc/ssh/ssh_host_ed25519_key")), true, "the source tree was changed");
    assert.notEqual((await ns.run("test", ["-e", join(lower, "etc/ssh/ssh_host_ed25519_key")])).exitCode, 0);
    assert.equal(
      (await ns.run("readlink", [join(lower, "var/lib/dbus/machine-id")])).stdout,
      "/etc/machine-id",
    );
    assert.match(await cat("etc/systemd/system/ssh.service.d/10-aplspawn-host-keys.conf"), /ssh-keygen -A/);
  });

  // Built already: nothing to do. --force rebuilds in place, keeping other lines of SHA256SUMS.
  await writeFile(join(out, "SHA256SUMS"), `${"1".repeat(64)} *other.img\n${sums}`);
  const again = await ns.cli(["-c", config, "image", "build", "--rootfs", tree]);
  assert.match(again.stdout, /\(unchanged\)/);
  const forced = await ns.cli(["-c", config, "image", "build", "--rootfs", tree, "--force"]);
  assert.equal(forced.exitCode, 0, forced.stderr);
  const sums2 = await readFile(join(out, "SHA256SUMS"), "utf8");
  assert.equal(findChecksum(sums2, "other.img"), "1".repeat(64));
  assert.equal(findChecksum(sums2, "tiny.img"), await sha256Of(image));
  assert.deepEqual(await leftovers(out), []);

  // A fault after the build rolls back the temporary tree only: the image is a cache and stays.
  const before = await sha256Of(image);
  const fault = await ns.cli(["-c", config, "image", "build", "--rootfs", tree, "--force"], {
    env: { APLSPAWN_FAIL_AFTER: "image.build" },
  });
  assert.equal(fault.exitCode, 1, fault.stdout);
  assert.match(fault.stdout, /UNDONE \] Removing the temporary build tree of tiny\.img/);
  assert.equal(
    findChecksum(await readFile(join(out, "SHA256SUMS"), "utf8"), "tiny.img"),
    await sha256Of(image),
  );
  assert.ok(before.length === 64);
  assert.deepEqual(await leftovers(out), []);
});

test("a build that fails midway removes its temporary tree and leaves no image", { skip }, async () => {
  const tree = await tinyRootfs(join(tmp.path, "badroot"));
  // /etc/hostname as a directory: writing the placeholder fails after the copy was made.
  await sh("rm", [join(tree, "etc/hostname")]);
  await mkdir(join(tree, "etc/hostname/x"), { recursive: true });
  const out = join(tmp.path, "badout");
  const config = await writeConfig(await mkdtemp(join(tmp.path, "c-")), {
    url: `file://${join(out, "bad.img")}`,
  });
  const r = await ns.cli(["-c", config, "image", "build", "--rootfs", tree]);
  assert.equal(r.exitCode, 1, r.stdout);
  assert.match(r.stderr, /etc\/hostname/);
  assert.deepEqual(await readdir(out), []);

  const notTree = await ns.cli(["-c", config, "image", "build", "--rootfs", join(tmp.path, "nowhere")]);
  assert.equal(notTree.exitCode, 1);
  assert.match(notTree.stderr, /nowhere is not a root filesystem tree/);
  assert.deepEqual(await readdir(out), []);
});

test("debootstrap never runs without the keyring that checks the mirror's signature", { skip }, async () => {
  const out = join(tmp.path, "nokeyring");
  const config = await writeConfig(await mkdtemp(join(tmp.path, "c-")), {
    url: `file://${join(out, "deb.img")}`,
    build: { keyring: join(tmp.path, "no-such-keyring.gpg") },
  });
  const r = await ns.cli(["-c", config, "image", "build"]);
  assert.equal(r.exitCode, 1, r.stdout);
  assert.match(
    r.stderr,
    /checks the mirror's signature with .*no-such-keyring\.gpg, which is missing: apt-get install debian-archive-keyring/,
  );
  assert.doesNotMatch(r.stdout, /debootstrap bookworm from/, "debootstrap was started");
  assert.deepEqual(await readdir(out).catch(() => []), []);
});

test("the test image (image build of the default recipe) is a GPT + squashfs Debian with sshd", {
  skip,
  timeout: 60 * 60 * 1000,
}, async () => {
  const { path, sha256 } = await ensureTestImage();
  assert.equal(await sha256Of(path), sha256);
  const inspect = await ns.cli(["image", "inspect", path]);
  assert.match(inspect.stdout, /GPT partition 1 \(root-.*\) at 1\.0 MiB, .*, squashfs/);
  // Other tests attach the shared image at the same time: look into a copy, so "no loop device left
  // on it" means ours.
  const copy = join(tmp.path, "test-image.img");
  await copyFile(path, copy);
  await inside(copy, async (lower) => {
    const has = async (f: string) => (await ns.run("test", ["-e", join(lower, f)])).exitCode === 0;
    for (const f of ["usr/sbin/sshd", "lib/systemd/systemd", "usr/bin/python3", "usr/bin/sudo", "sbin/ip"])
      assert.ok(await has(f), `${f} is missing from the image`);
    // An absolute symlink into the image: test the link itself, not where it points on the host.
    const wants = join(lower, "etc/systemd/system/multi-user.target.wants/ssh.service");
    assert.equal((await ns.run("test", ["-L", wants])).exitCode, 0, "sshd is not enabled");
    assert.equal((await ns.run("cat", [join(lower, "etc/hostname")])).stdout, "aplspawn");
    assert.equal(await has("etc/ssh/ssh_host_ed25519_key"), false, "host keys are baked into the image");
    assert.match((await ns.run("cat", [join(lower, "etc/debian_version")])).stdout, /^12\./);
  });
});
