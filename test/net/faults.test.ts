// Fault injection: a failure right after any netup task undoes everything netup created so far.
import assert from "node:assert/strict";
import { test } from "node:test";
import { assertNoResidue, ok } from "../support/lab.js";
import { netTest, withNettest } from "../support/net-lab.js";
import { skip } from "../support/ns.js";

test("APLSPAWN_FAIL_AFTER at each netup task: exit 1, names the task, nothing left", { skip }, () =>
  // Every kind of rule there is: a host port, a subnet let in, a port forward.
  withNettest(
    {
      hostPorts: ["tcp/3142"],
      allowFrom: ["192.168.77.0/24"],
      forwards: [{ hostPort: 2222, container: "nettest-10", port: 22 }],
    },
    async (lab) => {
      const ids = ok(await lab.cli(["run", "netup", "--list-tasks"]))
        .stdout.trim()
        .split("\n");
      assert.equal(ids.length, 42);
      for (const id of ids) {
        const r = await lab.cli(["run", "netup"], { APLSPAWN_FAIL_AFTER: id });
        assert.equal(r.exitCode, 1, `${id}: ${r.stdout}${r.stderr}`);
        assert.ok(r.stderr.includes(`task ${id} failed: injected failure after ${id}`), `${id}: ${r.stderr}`);
        assert.match(r.stdout, /‣ \[ UNDONE \] /);
        await assertNoResidue(lab, `after the failure injected at ${id}`);
        // Nothing left in the journal either: netdown has nothing to undo.
        const nd = ok(await lab.cli(["run", "netdown"]));
        assert.doesNotMatch(nd.stdout, /UNDONE/, `${id}: ${nd.stdout}`);
      }
    },
  ),
);

netTest(
  "a failure after netup's forwarding task restores the old ip_forward value, even 1",
  {},
  async (lab) => {
    const { ns } = lab;
    // With forwarding already on, the task finds nothing to do and rollback must not turn it off.
    assert.equal((await ns.run("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"])).exitCode, 0);
    lab.before = await ns.snapshot();
    const r = await lab.cli(["run", "netup"], { APLSPAWN_FAIL_AFTER: "net.nat.jump" });
    assert.equal(r.exitCode, 1);
    await assertNoResidue(lab, "after rollback");
    assert.equal((await ns.snapshot()).ipForward, "1");
  },
);
