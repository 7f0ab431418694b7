// A lab's subnet must not overlap what the host already routes through another interface (its
// LAN, a VPN): preflight refuses it, showing the route, before anything is changed.
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertNoResidue, netLabTest } from "../support/lab.js";
import { lanBridge } from "../support/net-peers.js";

netLabTest(
  "run up refuses a subnet that overlaps a route on another interface, naming the route, changing nothing",
  { name: "rt", subnet: 49, network: { chain: "RT" }, containers: { count: 1 } },
  async (lab) => {
    const { ns } = lab;
    await lanBridge(ns, "10.10.48.7/23");
    lab.before = await ns.snapshot();
    const image = { url: `file://${join(lab.dir, "none.img")}` };
    // 10.10.49.1/26, the lab's address.
    await lab.writeConfig({ image });
    const r = await lab.cli(["run", "up"]);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(
      r.stdout + r.stderr,
      /network\.address 10\.10\.49\.1\/26 overlaps what the host already routes elsewhere: 10\.10\.48\.0\/23 dev lan0/,
    );
    await assertNoResidue(lab, "after the refused run up");
    // Beside it, not on it: preflight has nothing to say about routes.
    await lab.writeConfig({
      image,
      network: { address: "10.10.50.1/26" },
      containers: { ipRange: ["10.10.50.10", "10.10.50.20"] },
    });
    const dry = await lab.cli(["run", "up", "--dry-run"]);
    assert.doesNotMatch(dry.stdout + dry.stderr, /overlaps what the host already routes/);
  },
);
