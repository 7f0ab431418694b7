// Host paths bound into a container and its limits, for real: a read-only bind shows the host's
// file and refuses writes from inside, a read-write one takes them; a link as host path is refused
// by validate and by run up; a process over the memory limit is killed by the kernel inside the
// container's cgroup while the container runs on; status shows both; down leaves no cgroup.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { realHost } from "../../src/host/real-host.js";
import { cgroupsOf } from "../../src/lab/cgroups.js";
import { claimsUnder, labTest, ok } from "../support/lab.js";

labTest(
  "binds and limits: ro bind refuses writes, rw bind takes them, a link is refused, a memory hog is OOM-killed inside the container's cgroup, status shows them",
  { name: "bl", subnet: 97, containers: { count: 1 } },
  async (lab) => {
    const ro = join(lab.dir, "share-ro");
    const rw = join(lab.dir, "share-rw");
    const link = join(lab.dir, "share-link");
    await mkdir(ro);
    await mkdir(rw);
    await writeFile(join(ro, "hello"), "from the host\n");
    await symlink(ro, link);
    const name = `${lab.prefix}10`;
    const containers = { count: 1, prefix: lab.prefix, memory: "64M", cpus: 0.5 };

    // A link as host path: validate says so, and run up refuses it before the container starts.
    await lab.writeConfig({
      containers: { ...containers, binds: [{ host: link, container: "/mnt/l" }] },
    });
    const v = await lab.cli(["validate"]);
    assert.equal(v.exitCode, 2, v.stderr);
    assert.match(v.stderr, /containers\.binds\.0\.host: .*share-link is a symbolic link/);
    const refused = await lab.cli(["run", "up"]);
    assert.equal(refused.exitCode, 1, refused.stderr);
    assert.match(refused.stderr, /cannot bind .*share-link into .*symbolic link/);

    await lab.writeConfig({
      containers: {
        ...containers,
        binds: [
          { host: ro, container: "/mnt/ro" },
          { host: rw, container: "/mnt/rw", readOnly: false },
        ],
      },
    });
    ok(await lab.cli(["validate"]), "validate with binds");
    const up = ok(await lab.cli(["run", "up"]), "run up with binds and limits");
    assert.match(up.stdout, /BINDS\s+LIMITS/);
    assert.match(up.stdout, /share-ro:\/mnt\/ro \(ro\) .*share-rw:\/mnt\/rw \(rw\)\s+memory 64M, cpus 0\.5/);

    const exec = (cmd: string) => lab.cli(["exec", name, "--", "sh", "-c", cmd]);
    assert.equal(ok(await exec("cat /mnt/ro/hello"), "read the ro bind").stdout.trim(), "from the host");
    const w = await exec("echo x > /mnt/ro/new");
    assert.notEqual(w.exitCode, 0, "a write into the read-only bind succeeded");
    assert.match(w.stderr + w.stdout, /Read-only file system/);
    assert.equal(existsSync(join(ro, "new")), false);
    ok(await exec("echo written inside > /mnt/rw/out"), "write into the rw bind");
    assert.equal(await readFile(join(rw, "out"), "utf8"), "written inside\n");

    // Root in the container (no privateUsers) has CAP_SYS_ADMIN over its mount namespace, and
    // nspawn's seccomp filter lets mount(2) through: it can remount the read-only bind
    // read-write and write the host's directory (docs/trust-model.md says so).
    const remount = "mount -o remount,bind,rw /mnt/ro && echo y > /mnt/ro/remounted";
    ok(await exec(remount), "remount of the ro bind by the container's root (no privateUsers)");
    assert.equal(await readFile(join(ro, "remounted"), "utf8"), "y\n");
    await rm(join(ro, "remounted"));

    // The limits: in the container's cgroup, and status shows them.
    const status = ok(await lab.cli(["status"]), "status");
    assert.match(
      status.stdout,
      /Checking binds and limits: .*share-ro:\/mnt\/ro \(ro\).*memory 64M, cpus 0\.5/s,
    );
    const mem = (await cgroupsOf(realHost(), "self")).get("/sys/fs/cgroup/memory");
    const cg = mem ? `${mem}/aplspawn/${name}` : undefined;
    if (cg) {
      assert.equal((await readFile(`${cg}/memory.limit_in_bytes`, "utf8")).trim(), String(64 * 1024 ** 2));
      const cpu = `${(await cgroupsOf(realHost(), "self")).get("/sys/fs/cgroup/cpu")}/aplspawn/${name}`;
      assert.equal((await readFile(`${cpu}/cpu.cfs_quota_us`, "utf8")).trim(), "50000");
    }
    const kills = async () =>
      cg ? Number(/oom_kill (\d+)/.exec(await readFile(`${cg}/memory.oom_control`, "utf8"))?.[1]) : 0;
    const before = await kills();
    const hog = await exec("python3 -c 'b = bytearray(256 * 1024 * 1024); print(len(b))'");
    assert.notEqual(hog.exitCode, 0, `a 256 MiB allocation under a 64M limit succeeded: ${hog.stdout}`);
    if (cg)
      assert.ok((await kills()) > before, "the kernel's OOM killer did not act in the container's cgroup");
    // The container runs on, and answers.
    ok(await exec("true"), "the container after the OOM kill");
    ok(await lab.cli(["status"]), "status after the OOM kill");

    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    if (cg) assert.equal(existsSync(cg), false, `${cg} is left`);

    // With privateUsers, the container's root is not the host's: the kernel locks the read-only
    // flag of a mount it got from a more privileged namespace, and the remount is refused.
    await lab.writeConfig({
      containers: { ...containers, privateUsers: true, binds: [{ host: ro, container: "/mnt/ro" }] },
    });
    ok(await lab.cli(["run", "up"]), "run up with privateUsers and a ro bind");
    assert.equal(ok(await exec("cat /mnt/ro/hello"), "read the ro bind").stdout.trim(), "from the host");
    const locked = await exec(remount);
    assert.notEqual(locked.exitCode, 0, "the container's root remounted the ro bind rw under privateUsers");
    assert.equal(existsSync(join(ro, "remounted")), false);
    // --purge: the container's user id range is given back with its upper layer (a plain down keeps
    // both, and the claim would outlive the test's directory).
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge (privateUsers)");
    assert.deepEqual([...(await claimsUnder(lab.dir)).values()], [], "user id range claims are left");
  },
);
