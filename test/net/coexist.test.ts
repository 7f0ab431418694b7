// Two labs with their own bridges and chains in one namespace: each netdown removes only its own.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { InfoEvent } from "../../src/runner/report.js";
import { runEvents, summary } from "../support/json-events.js";
import {
  assertNoResidue,
  type LabConfig,
  type NetLab,
  ok,
  sameSnapshot,
  settled,
  withNetLab,
} from "../support/lab.js";
import { probes, rules } from "../support/net-lab.js";
import { skip } from "../support/ns.js";

/** Lab alpha (10.10.12.1/26) and, in the same namespace, lab beta (10.10.13.1/26, range .10 to .60). */
const withAlphaBeta = (fn: (a: NetLab, b: LabConfig) => Promise<void>) =>
  withNetLab(
    "alpha",
    12,
    async (a) => fn(a, await a.add("beta", 13, { network: { bridge: "brbeta", chain: "BETA" } })),
    { network: { bridge: "bralpha", chain: "ALPHA" } },
  );

test("two labs coexist; netdown in reverse order leaves each as it was", { skip }, () =>
  withAlphaBeta(async (a, b) => {
    const { ns } = a;
    ok(await a.cli(["run", "netup"]));
    const onlyAlpha = settled(await ns.snapshot());
    assert.equal(
      summary(ok(await b.cli(["--json", "run", "netup"]))).changed,
      15,
      "beta finds forwarding on, and holds it too",
    );
    const both = await rules(ns);
    assert.match(both, /-j ALPHA/);
    assert.match(both, /-j BETA/);
    ok(await b.cli(["run", "netdown"]));
    sameSnapshot(settled(await ns.snapshot()), onlyAlpha, "after beta's netdown");
    assert.equal(summary(ok(await a.cli(["--json", "run", "netup"]))).changed, 0, "alpha is intact");
    ok(await a.cli(["run", "netdown"]));
    await assertNoResidue(a, "after alpha's netdown");
  }),
);

test(
  "the first lab's netdown leaves forwarding on for the other; the last one's puts it back",
  { skip },
  () =>
    withAlphaBeta(async (a, b) => {
      const { ns } = a;
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
        (await probes(b)).filter((p) => !p.ok),
        [],
        "every check of beta still passes",
      );
      assert.equal(summary(ok(await b.cli(["--json", "run", "netup"]))).changed, 0, "beta is intact");
      ok(await b.cli(["run", "netdown"]));
      // Beta found forwarding on (alpha's doing), but the hold record kept the value found before
      // alpha: the last lab to let go puts it back.
      await assertNoResidue(a, "after both netdowns");
      assert.equal(a.before.ipForward, "0");
    }),
);
