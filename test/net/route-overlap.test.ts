// A lab's subnet must not overlap what the host already routes through another interface (its
// LAN, a VPN): preflight refuses it, showing the route, before anything is changed.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { isRoot, TestNamespace, tempDir } from "../support/ns.js";

const skip = isRoot ? false : "needs root (a network namespace)";

test("run up refuses a subnet that overlaps a route on another interface, naming the route, changing nothing", {
  skip,
}, async () => {
  const ns = await TestNamespace.create();
  const t = await tempDir("aplspawn-route-");
  try {
    for (const [cmd, ...args] of [
      ["ip", "link", "add", "lan0", "type", "bridge"],
      // No IPv6 link-local address appearing later, in the middle of the comparison.
      ["sysctl", "-q", "-w", "net.ipv6.conf.lan0.disable_ipv6=1"],
      ["ip", "addr", "add", "10.10.48.7/23", "dev", "lan0"],
      ["ip", "link", "set", "lan0", "up"],
    ] as const)
      assert.equal((await ns.run(cmd, args)).exitCode, 0);
    const before = await ns.snapshot();
    const config = join(t.path, "lab.yaml");
    const write = (address: string, ipRange: string[]) =>
      writeFile(
        config,
        stringify({
          lab: "rt",
          workdir: join(t.path, "work"),
          network: { bridge: "br-rt", address, chain: "RT" },
          image: { url: `file://${join(t.path, "none.img")}` },
          containers: { count: 1, ipRange, machinesDir: join(t.path, "machines") },
        }),
      );
    await write("10.10.49.1/26", ["10.10.49.10", "10.10.49.20"]);
    const r = await ns.cli(["-c", config, "run", "up"]);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(
      r.stdout + r.stderr,
      /network\.address 10\.10\.49\.1\/26 overlaps what the host already routes elsewhere: 10\.10\.48\.0\/23 dev lan0/,
    );
    assert.deepEqual(await ns.snapshot(), before, "preflight changed something");
    // Beside it, not on it: preflight has nothing to say about routes.
    await write("10.10.50.1/26", ["10.10.50.10", "10.10.50.20"]);
    const dry = await ns.cli(["-c", config, "run", "up", "--dry-run"]);
    assert.doesNotMatch(dry.stdout + dry.stderr, /overlaps what the host already routes/);
  } finally {
    await ns.destroy();
    await t.cleanup();
  }
});
