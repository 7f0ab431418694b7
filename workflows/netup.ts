// netup: the lab's bridge, forwarding and iptables chains, in the original tool's four steps,
// which run side by side.
import type { Config } from "../config/schema.js";
import { group, type Step, task } from "../src/runner/task.js";
import { bridgeTask } from "../tasks/net/bridge.js";
import { bridgeAddressTask } from "../tasks/net/bridge-address.js";
import { bridgeGroupTask } from "../tasks/net/bridge-group.js";
import { bridgeIpv6Task } from "../tasks/net/bridge-ipv6.js";
import { bridgeUpTask } from "../tasks/net/bridge-up.js";
import { netClaim } from "../tasks/net/claim.js";
import { forwardingTask } from "../tasks/net/forwarding.js";
import { type ChainParams, chainTask } from "../tasks/net/iptables-chain.js";
import { ruleTask } from "../tasks/net/iptables-rule.js";
import { netPlan, type PlannedRule } from "./net-plan.js";
import type { WorkflowBuilder } from "./types.js";

/** A chain with its own rules, made with it in one batch (tasks/net/iptables-chain.ts). */
const withRules = (c: ChainParams, rules: PlannedRule[]): ChainParams => ({
  ...c,
  rules: rules
    .filter((r) => r.params.rule.table === c.table && r.params.rule.chain === c.chain)
    .map((r) => ({ args: r.params.rule.args, insert: r.params.insert })),
});

/** The steps that bring the network up (also composed into `up`). */
export const netupSteps = (c: Config): Step[] => {
  const p = netPlan(c);
  const steps: Step[] = [
    group("net.group.bridge", `Configuring bridge ${p.bridge.bridge}`, [
      task(bridgeTask, "net.bridge", p.bridge),
      task(bridgeAddressTask, "net.bridge.address", p.address),
      task(bridgeIpv6Task, "net.bridge.ipv6", p.bridge),
      task(bridgeGroupTask, "net.bridge.group", p.group),
      task(bridgeUpTask, "net.bridge.up", p.bridge),
    ]),
    task(forwardingTask, "net.forwarding", p.forwarding),
    group("net.group.filter", `Configuring iptables forwarding rules for chain ${p.filterChain.chain}`, [
      // The out chain first: the filter chain's rules jump to it (and its undo, coming later,
      // finds it no longer referenced).
      task(chainTask, "net.out.chain", withRules(p.outChain, p.outRules)),
      task(chainTask, "net.filter.chain", withRules(p.filterChain, p.filterRules)),
      ...p.outRules.map((r) => task(ruleTask, r.id, r.params)),
      ...p.filterRules.map((r) => task(ruleTask, r.id, r.params)),
    ]),
    group(
      "net.group.input",
      `Configuring iptables rules for traffic to the host, chain ${p.inputChain.chain}`,
      [
        task(chainTask, "net.input.chain", withRules(p.inputChain, p.inputRules)),
        ...p.inputRules.map((r) => task(ruleTask, r.id, r.params)),
      ],
    ),
  ];
  if (p.nat)
    steps.push(
      group("net.group.nat", `Configuring iptable NAT rules for chain ${p.nat.chain.chain}`, [
        task(chainTask, "net.nat.chain", withRules(p.nat.chain, p.nat.rules)),
        ...p.nat.rules.map((r) => task(ruleTask, r.id, r.params)),
      ]),
    );
  if (p.dnat)
    steps.push(
      group("net.group.dnat", `Configuring port forwards, chain ${p.dnat.chain.chain}`, [
        task(chainTask, "net.dnat.chain", withRules(p.dnat.chain, p.dnat.rules)),
        ...p.dnat.rules.map((r) => task(ruleTask, r.id, r.params)),
      ]),
    );
  // The names are claimed first (two labs must not both make one bridge); then the parts, which
  // touch different things (bridge, sysctl, filter chains, nat table), are set up at once. Within
  // each part, order matters (a chain before its rules) and is kept.
  return [
    group("net.group", "Bringing the network up", [
      task(netClaim, "net.claim", p.claim),
      group("net.parts", "Configuring the bridge, forwarding and iptables side by side", steps, steps.length),
    ]),
  ];
};

/** The netup workflow. */
export const netup: WorkflowBuilder = (c) => ({ name: "netup", steps: netupSteps(c) });
