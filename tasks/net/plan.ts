// The network a config asks for, as task parameters: which rules, in which chains. Shared by the
// netup workflow (which composes tasks from it) and the status probes (which check the same things),
// so the two never disagree. No I/O here.
import { intToIp, parseCidr } from "../../config/ip.js";
import type { Config } from "../../config/schema.js";
import { labHolder } from "../../src/lab/holds.js";
import { ruleComment } from "../../src/net/iptables.js";
import type { BridgeParams } from "./bridge.js";
import type { BridgeAddressParams } from "./bridge-address.js";
import type { ForwardingParams } from "./forwarding.js";
import type { ChainParams } from "./iptables-chain.js";
import type { RuleParams } from "./iptables-rule.js";

/** A rule task with its stable id. */
export interface PlannedRule {
  id: string;
  params: RuleParams;
}

/** Everything netup sets up, in order. */
export interface NetPlan {
  bridge: BridgeParams;
  address: BridgeAddressParams;
  forwarding: ForwardingParams;
  filterChain: ChainParams;
  /** Rules in our filter chain, then the jumps from FORWARD into it. */
  filterRules: PlannedRule[];
  /** Absent when network.nat is false. */
  nat?: { chain: ChainParams; rules: PlannedRule[] };
}

/** The bridge's subnet in CIDR form (10.10.12.0/26 for 10.10.12.1/26). */
function subnetOf(address: string): string {
  const c = parseCidr(address);
  return `${intToIp(c.network)}/${c.prefix}`;
}

/**
 * The network of a config. The NAT chain has the same name as the filter chain (`network.chain`,
 * default NSPAWN), in the nat table: chain names are per table, and the original tool's output
 * ("NAT rules for chain NSPAWN") names one chain for both.
 */
export function netPlan(c: Config): NetPlan {
  const { bridge, address, chain } = c.network;
  const subnet = subnetOf(address);
  // Every rule carries the lab's comment: iptables-save shows whose it is, and a rule of the same
  // shape that someone else added is never taken for ours (-C and -D match the comment too).
  const mark = ["-m", "comment", "--comment", ruleComment(c.lab)];
  const filter = (id: string, title: string, args: string[]): PlannedRule => ({
    id: `net.filter.rule[${id}]`,
    params: {
      rule: { table: "filter", chain, args: [...args, ...mark, "-j", "ACCEPT"] },
      insert: false,
      title,
    },
  });
  const filterRules: PlannedRule[] = [
    filter("out", `Accepting traffic from ${bridge} to other interfaces`, ["-i", bridge, "!", "-o", bridge]),
    filter("return", `Accepting established and related traffic back to ${bridge}`, [
      "-o",
      bridge,
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    filter("internal", `Accepting traffic between containers on ${bridge}`, ["-i", bridge, "-o", bridge]),
    // Two jumps, one per direction, so the chain sees only this bridge's traffic and two labs'
    // chains never judge each other's packets. Inserted on top: a host firewall's final REJECT
    // in FORWARD must not shadow them. The built-in chain's policy is never touched.
    {
      id: "net.filter.jump[in]",
      params: {
        rule: { table: "filter", chain: "FORWARD", args: ["-i", bridge, ...mark, "-j", chain] },
        insert: true,
        title: `Jumping from FORWARD to ${chain} for traffic from ${bridge}`,
      },
    },
    {
      id: "net.filter.jump[out]",
      params: {
        rule: { table: "filter", chain: "FORWARD", args: ["-o", bridge, ...mark, "-j", chain] },
        insert: true,
        title: `Jumping from FORWARD to ${chain} for traffic to ${bridge}`,
      },
    },
  ];
  const plan: NetPlan = {
    bridge: { bridge },
    address: { bridge, address },
    forwarding: { holder: labHolder(c) },
    filterChain: { table: "filter", chain },
    filterRules,
  };
  if (c.network.nat)
    // Only POSTROUTING needs a jump: the lab does no port forwarding, so PREROUTING and OUTPUT
    // (DNAT) have nothing to do.
    plan.nat = {
      chain: { table: "nat", chain },
      rules: [
        {
          id: "net.nat.rule[masquerade]",
          params: {
            rule: {
              table: "nat",
              chain,
              args: ["-s", subnet, "!", "-o", bridge, ...mark, "-j", "MASQUERADE"],
            },
            insert: false,
            title: `Masquerading ${subnet} leaving through interfaces other than ${bridge}`,
          },
        },
        {
          id: "net.nat.jump",
          params: {
            rule: { table: "nat", chain: "POSTROUTING", args: ["-s", subnet, ...mark, "-j", chain] },
            insert: false,
            title: `Jumping from POSTROUTING to ${chain} for traffic from ${subnet}`,
          },
        },
      ],
    };
  return plan;
}
