// Fault injection into `run netup`: a failure after its forwarding task restores ip_forward as it
// found it. (A fault after each of netup's tasks, every one once, is in test/reliability/faults.test.ts:
// up runs the same tasks, on a lab with every kind of network rule.)
import assert from "node:assert/strict";
import { assertNoResidue } from "../support/lab.js";
import { netTest } from "../support/net-lab.js";

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
