// Two labs with their own bridges and chains in one namespace: each netdown removes only its own.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { InfoEvent } from "../../src/runner/report.js";
import { runEvents, summary } from "../support/json-events.js";
import { isRoot } from "../support/ns.js";
import { ok, probes, rules, sameSnapshot, settled, withNetLabs } from "./lab.js";

const skip = !isRoot && "needs root (real bridges and iptables in a private namespace)";

const alpha = { lab: "alpha", bridge: "bralpha", chain: "ALPHA", address: "10.10.12.1/26" };
const beta = {
  lab: "beta",
  bridge: "brbeta",
  chain: "BETA",
  address: "10.10.13.1/26",
  ipRange: ["10.10.13.10", "10.10.13.60"] as [string, string],
};

test("two labs coexist; netdown in reverse order leaves each as it was", { skip }, () =>
  withNetLabs([alpha, beta], async (ns, [a, b], base) => {
    ok(await a.cli(["run", "netup"]));
    const onlyAlpha = settled(await ns.snapshot());
    assert.equal(
      summary(ok(await b.cli(["--json", "run", "netup"]))).changed,
      13,
      "beta finds forwarding on, and holds it too",
    );
    const both = await rules(ns);
    assert.match(both, /-j ALPHA/);
    assert.match(both, /-j BETA/);
    ok(await b.cli(["run", "netdown"]));
    sameSnapshot(settled(await ns.snapshot()), onlyAlpha, "after beta's netdown");
    assert.equal(summary(ok(await a.cli(["--json", "run", "netup"]))).changed, 0, "alpha is intact");
    ok(await a.cli(["run", "netdown"]));
    sameSnapshot(await ns.snapshot(), base, "after alpha's netdown");
  }),
);

test(
  "the first lab's netdown leaves forwarding on for the other; the last one's puts it back",
  { skip },
  () =>
    withNetLabs([alpha, beta], async (ns, [a, b], base) => {
      ok(await a.cli(["run", "netup"]));
      ok(await b.cli(["run", "netup"]));
      const nd = ok(await a.cli(["--json", "run", "netdown"]));
      const note = runEvents(nd).find((e): e is InfoEvent => e.event === "info" && e.id === "net.forwarding");
      assert.match(
        note?.message ?? "",
        /^net\.ipv4\.ip_forward left as it is: lab \/\S+\/beta still relies on it$/,
      );
      const left = await rules(ns);
      assert.doesNotMatch(left, /ALPHA|bralpha|aplspawn:alpha/);
      assert.equal(
        (await ns.run("ip", ["link", "show", "dev", "bralpha"])).exitCode,
        1,
        "alpha's bridge is gone",
      );
      assert.deepEqual(
        (await probes(ns, b)).filter((p) => !p.ok),
        [],
        "every check of beta still passes",
      );
      assert.equal(summary(ok(await b.cli(["--json", "run", "netup"]))).changed, 0, "beta is intact");
      ok(await b.cli(["run", "netdown"]));
      // Beta found forwarding on (alpha's doing), but the hold record kept the value found before
      // alpha: the last lab to let go puts it back.
      sameSnapshot(await ns.snapshot(), base, "after both netdowns");
      assert.equal(base.ipForward, "0");
    }),
);
