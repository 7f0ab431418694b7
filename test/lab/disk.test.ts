// A container's own file system (containers.diskMax), for real: a container that writes past it gets
// ENOSPC inside and runs on (ssh answers), another container of the lab can still write, the host's
// file system grew by no more than the bound, the state outlives `run down`, a failed first run
// rolls the file, its loop device and its mount back, an upper layer an older aplspawn left on the
// host's file system is refused and left as it is, and `down --purge` leaves nothing.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { assertNoResidue, labTest, ok } from "../support/lab.js";

const MAX = 128 * 1024 ** 2;

labTest(
  "diskMax: a container writing past it gets ENOSPC and runs on, its neighbour still writes, the host grows by at most the bound, a failed run and down --purge leave nothing",
  { name: "dsk", subnet: 113, containers: { count: 2, diskMax: "128M" } },
  async (lab) => {
    const [a, b] = [`${lab.prefix}10`, `${lab.prefix}11`];
    const dirOf = (n: string) => join(lab.workdir, lab.name, "containers", n);
    const loops = async () =>
      (await lab.ns.run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(lab.dir));
    // Host blocks under a container's directory, on the host's file system alone (-x: not its disk).
    const hostBytes = async (n: string) =>
      Number((await lab.ns.run("du", ["-sx", "--block-size=1", dirOf(n)])).stdout.split(/\s/)[0]);

    // A failure right after the mount: the file, the device and the mount are rolled back.
    const failed = await lab.cli(["run", "up"], { APLSPAWN_FAIL_AFTER: `container.disk-mount[${a}]` });
    assert.equal(failed.exitCode, 1, `${failed.stdout}\n${failed.stderr}`);
    assert.match(failed.stderr, /container\.disk-mount/);
    assert.deepEqual(await loops(), [], "loop devices left by the failed run");
    assert.equal(existsSync(join(dirOf(a), "disk.img")), false, "the failed run left the disk file");
    await assertNoResidue(lab, "after the failed run");

    // A lab an older aplspawn made (the upper layer on the host's file system) is refused, the
    // layer named and left as it is, never set aside for an empty one.
    const legacy = join(dirOf(a), "upper");
    await mkdir(join(legacy, "etc"), { recursive: true });
    await writeFile(join(legacy, "etc", "old"), "old\n");
    const old = await lab.cli(["run", "up"]);
    assert.equal(old.exitCode, 1, `${old.stdout}\n${old.stderr}`);
    assert.match(old.stderr, /upper layer from before containers had a file system of their own/);
    assert.ok(old.stderr.includes(legacy), `the old layer is named:\n${old.stderr}`);
    assert.match(old.stderr, /aplspawn run down --purge/);
    assert.equal(await readFile(join(legacy, "etc", "old"), "utf8"), "old\n", "the old layer was touched");
    assert.equal(existsSync(join(dirOf(a), "disk.img")), false, "the refused run left the disk file");
    await assertNoResidue(lab, "after the refused run");
    await rm(legacy, { recursive: true });

    ok(await lab.cli(["run", "up"]), "run up");
    assert.equal((await loops()).length, 2, "one loop device per container");
    const before = await hostBytes(a);
    const exec = (n: string, cmd: string) => lab.cli(["exec", n, "--", "sh", "-c", cmd]);
    const fill = await exec(a, "dd if=/dev/zero of=/fill bs=1M count=300 conv=fsync");
    assert.notEqual(fill.exitCode, 0, `300 MiB fit in a 128M disk: ${fill.stdout}`);
    assert.match(fill.stderr + fill.stdout, /No space left on device|Disk quota exceeded/);
    const grown = (await hostBytes(a)) - before;
    assert.ok(grown <= MAX, `the host's file system grew by ${grown} bytes, more than the bound ${MAX}`);
    // The full container runs on and answers over ssh; its neighbour writes as before.
    ok(await exec(a, "true"), "the full container");
    ok(await lab.cli(["status"]), "status with one container's disk full");
    ok(await exec(b, "dd if=/dev/zero of=/data bs=1M count=20 conv=fsync"), "the neighbour writes");

    // The state outlives down (the disk is kept, its device and mount are not) and comes back with up.
    ok(await exec(a, "rm /fill && echo kept > /state"), "free the disk");
    ok(await lab.cli(["run", "down"]), "run down");
    assert.deepEqual(await loops(), [], "run down left loop devices");
    assert.ok(existsSync(join(dirOf(a), "disk.img")), "run down deleted the disk");
    ok(await lab.cli(["run", "up"]), "run up again");
    assert.equal(ok(await exec(a, "cat /state")).stdout.trim(), "kept");

    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    assert.equal(existsSync(join(dirOf(a), "disk.img")), false, "down --purge left the disk");
    await assertNoResidue(lab, "after down --purge");
  },
);
