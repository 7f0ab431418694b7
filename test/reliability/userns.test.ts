// containers.privateUsers: each container runs in a user namespace of its own, root inside being an
// unprivileged id range on the host. Proven for real: the ranges the kernel gives the containers,
// what root inside leaves on the host (files, a setuid binary), ssh, Ansible with become, exec's
// capabilities, the range kept across down/up with the upper layer, and nothing left after a purge.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { assertNoResidue, claimsUnder, labTest, ok, statusField, upperOf } from "../support/lab.js";

labTest(
  "containers.privateUsers: root in a container is an id range of its own on the host; ssh, Ansible become and exec work; nothing is left",
  { name: "cnu", subnet: 46, containers: { count: 2, privateUsers: true } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    ok(await lab.cli(["status"]), "status");
    const leaders = ok(await lab.cli(["pids"]), "pids")
      .stdout.trim()
      .split(/\s+/)
      .map(Number);
    assert.equal(leaders.length, 2);
    const bases: number[] = [];
    for (const pid of leaders) {
      const [inside, host, count] = (await readFile(`/proc/${pid}/uid_map`, "utf8")).trim().split(/\s+/);
      assert.equal(inside, "0");
      assert.equal(count, "65536");
      assert.ok(Number(host) >= 0x80000, `container root is host uid ${host}`);
      bases.push(Number(host));
    }
    assert.notEqual(bases[0], bases[1], "two containers share an id range");
    const claims = await claimsUnder(lab.dir);
    assert.deepEqual([...claims.keys()].sort(), [...bases].sort(), "the registry names both ranges");

    // What root inside leaves is the range's, never the host's root: a file, a setuid binary.
    const exec = (name: string, ...cmd: string[]) => lab.cli(["exec", name, "--", ...cmd]);
    ok(
      await exec(
        "cnu-10",
        "sh",
        "-c",
        "touch /root/by-root && cp /usr/bin/id /root/suid && chmod 4755 /root/suid",
      ),
      "exec",
    );
    // The upper layer is on the container's own file system, mounted in the lab's namespace only.
    const upper = upperOf(lab, "cnu-10");
    const inLab = async (f: string) => {
      const r = await lab.ns.run("stat", ["-c", "%u %a", join(upper, f)]);
      assert.equal(r.exitCode, 0, `stat ${f}: ${r.stderr}`);
      const [uid, mode] = r.stdout.trim().split(" ");
      return { uid: Number(uid), mode: Number.parseInt(mode ?? "", 8) };
    };
    const base = claims.get(bases[0] as number) === upper ? (bases[0] as number) : (bases[1] as number);
    for (const f of ["root/by-root", "root/suid"]) {
      const s = await inLab(f);
      assert.equal(s.uid, base, `${f} is owned by host uid ${s.uid}`);
    }
    assert.equal((await inLab("root/suid")).mode & 0o4000, 0o4000);
    assert.equal(ok(await exec("cnu-10", "id", "-u"), "id").stdout.trim(), "0", "root inside");

    // aplspawn's own writes carry the container's ids: host keys (root's), the user's keys.
    assert.equal((await inLab("etc/ssh/ssh_host_ed25519_key")).uid, base);
    const passwd = ok(await lab.ns.run("cat", [join(upper, "etc/passwd")]), "passwd").stdout;
    const uid = Number(/^test:[^:]*:(\d+):/m.exec(passwd)?.[1]);
    assert.equal((await inLab("home/test/.ssh/authorized_keys")).uid, base + uid);

    // exec: started by the container's systemd, so with the init's bounding set and seccomp filter.
    const init = await readFile(`/proc/${leaders[0]}/status`, "utf8");
    const own = ok(await exec("cnu-10", "cat", "/proc/self/status"), "status").stdout;
    for (const f of ["CapBnd", "Seccomp", "Seccomp_filters"])
      assert.equal(statusField(own, f), statusField(init, f), `${f} as the container init's`);
    assert.equal(statusField(own, "NoNewPrivs"), "1");

    // Ansible through the inventory, with become: root inside, the range's on the host.
    const a = await lab.ns.run(
      "ansible",
      ["-i", lab.inventory, "-b", "-m", "copy", "-a", "dest=/root/by-ansible content=hi", "all"],
      { cwd: lab.dir },
    );
    assert.equal(a.exitCode, 0, a.stdout + a.stderr);
    assert.equal((await inLab("root/by-ansible")).uid, base);

    // down keeps the upper layers and their ranges; up again gets the same ones.
    ok(await lab.cli(["run", "down"]), "run down");
    assert.deepEqual(await claimsUnder(lab.dir), claims, "the ranges stay with the kept upper layers");
    ok(await lab.cli(["run", "up"]), "run up again");
    const again = ok(await lab.cli(["pids"]), "pids")
      .stdout.trim()
      .split(/\s+/)
      .map(Number);
    const basesAgain = [];
    for (const pid of again)
      basesAgain.push(Number((await readFile(`/proc/${pid}/uid_map`, "utf8")).trim().split(/\s+/)[1]));
    assert.deepEqual(basesAgain.sort(), [...bases].sort());
    assert.equal(ok(await exec("cnu-11", "cat", "/root/by-ansible"), "cat").stdout, "hi");

    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    assert.deepEqual(await claimsUnder(lab.dir), new Map(), "ranges left in the registry");
    await assertNoResidue(lab, "after down --purge");
  },
);
