// The lab's NAT rule (workflows/net-plan.ts): what the lab sends beyond the bridge is masqueraded,
// except to the lab's own subnet, which across hosts (cluster.overlay routes) lies beyond the bridge
// and must keep the containers' own addresses.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../config/load.js";
import { netPlan } from "../../workflows/net-plan.js";

test("the masquerade rule leaves traffic to the lab's own subnet alone", () => {
  const c = parseConfig("lab: n1\nnetwork: {bridge: br-n1, address: 10.10.12.1/26}\n", "t.yaml");
  const rules = netPlan(c).nat?.rules ?? [];
  const masquerade = rules.find((r) => r.id === "net.nat.rule[masquerade]");
  assert.ok(masquerade, rules.map((r) => r.id).join(" "));
  const args = masquerade.params.rule.args;
  assert.deepEqual(args.slice(0, 8), ["-s", "10.10.12.0/26", "!", "-d", "10.10.12.0/26", "!", "-o", "br-n1"]);
  assert.equal(args.at(-1), "MASQUERADE");
});
