// iptables backends: the legacy one works like nf_tables, rules are removed with the backend that
// made them even after the host switched, and a missing iptables is reported clearly.
import assert from "node:assert/strict";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { assertNoResidue, initTables, ok } from "../support/lab.js";
import { netTest, rules, useLegacy } from "../support/net-lab.js";

netTest("netup and netdown with the legacy backend", {}, async (lab) => {
  const { ns } = lab;
  // The fixture made the nf_tables tables; the legacy ones need the same.
  await useLegacy(ns, lab.dir);
  await initTables(ns);
  lab.before = await ns.snapshot();
  ok(await lab.cli(["run", "netup"]));
  const r = await rules(ns);
  assert.match(r, /-A FORWARD -i nspawnd0 -m comment --comment "?aplspawn:nettest"? -j NSPAWN/);
  assert.match(r, /-A NSPAWN -s 10\.10\.12\.0\/26 ! -d 10\.10\.12\.0\/26 ! -o nspawnd0 .*-j MASQUERADE/);
  // Nothing went into nf_tables: the backends are not mixed.
  assert.doesNotMatch((await ns.run("iptables-nft-save", [])).stdout, /NSPAWN/);
  ok(await lab.cli(["run", "netdown"]));
  await assertNoResidue(lab, "after netdown");
});

netTest(
  "rules made with nf_tables are removed with nf_tables after the host switched to legacy",
  {},
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]));
    await useLegacy(ns, lab.dir);
    ok(await lab.cli(["run", "netdown"]));
    // Reading the legacy tables may instantiate them (empty); no rule of ours goes there.
    assert.doesNotMatch(await rules(ns), /NSPAWN|aplspawn/, "nothing done in the legacy tables");
    assert.equal((await ns.run("umount", ["/etc/alternatives"])).exitCode, 0);
    await assertNoResidue(lab, "nf_tables after netdown");
  },
);

netTest(
  "without iptables, netup fails with a clear message and undoes whatever it made meanwhile",
  {},
  async (lab) => {
    const { ns } = lab;
    const bin = join(lab.dir, "bin");
    await mkdir(bin);
    lab.before = await ns.snapshot();
    // A PATH with what netup needs besides iptables (and nsenter, to enter the namespace; flock
    // stdbuf and cat hold the lab's lock).
    for (const cmd of ["nsenter", "ip", "sysctl", "flock", "stdbuf", "cat"]) {
      const which = await ns.run("sh", ["-c", `command -v ${cmd}`]);
      await symlink(which.stdout.trim(), join(bin, cmd));
    }
    const r = await lab.cli(["run", "netup"], { PATH: bin });
    assert.equal(r.exitCode, 1, r.stdout + r.stderr);
    // The four parts of netup run side by side: whichever iptables task comes first fails.
    assert.match(r.stderr, /task net\.(filter|out|nat)\.chain failed: iptables is not installed/);
    assert.match(r.stderr, /apt-get install iptables/);
    await assertNoResidue(lab, "after the failed netup");
  },
);
