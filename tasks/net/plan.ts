// The network a config asks for, as task parameters: which rules, in which chains. Shared by the
// netup workflow (which composes tasks from it) and the status probes (which check the same things),
// so the two never disagree. No I/O here.
import { containerSpecs } from "../../config/containers.js";
import { intToIp, parseCidr } from "../../config/ip.js";
import { labDir } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { labHolder } from "../../src/lab/holds.js";
import { ruleComment } from "../../src/net/iptables.js";
import type { BridgeParams } from "./bridge.js";
import type { BridgeAddressParams } from "./bridge-address.js";
import type { NetClaimParams } from "./claim.js";
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
  /** The names the lab claims before it makes them. */
  claim: NetClaimParams;
  bridge: BridgeParams;
  address: BridgeAddressParams;
  forwarding: ForwardingParams;
  filterChain: ChainParams;
  /** Rules in our filter chain, then the jumps from FORWARD into it. */
  filterRules: PlannedRule[];
  /** Our chain for what the lab sends to the host itself, its rules, then the jump from INPUT. */
  inputChain: ChainParams;
  inputRules: PlannedRule[];
  /** Absent when network.nat is false. */
  nat?: { chain: ChainParams; rules: PlannedRule[] };
  /** network.forwards: our nat chain for them, its DNAT rules and the jump from PREROUTING; absent when none. */
  dnat?: { chain: ChainParams; rules: PlannedRule[] };
}

/** The bridge's subnet in CIDR form (10.10.12.0/26 for 10.10.12.1/26). */
function subnetOf(address: string): string {
  const c = parseCidr(address);
  return `${intToIp(c.network)}/${c.prefix}`;
}

/** Link-local addresses: where clouds serve instance metadata (169.254.169.254) and credentials. */
const LINK_LOCAL = "169.254.0.0/16";

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
  // In our chains, what is accepted goes on top (inserted) and what is refused at the bottom
  // (appended): every accept is of a kind the refusals do not overlap in purpose, so a rule put
  // back after drift lands where it works, whatever else is missing.
  const rule = (
    table: "filter" | "nat",
    into: string,
    id: string,
    title: string,
    args: string[],
    target: string[],
  ): PlannedRule => ({
    id,
    params: {
      rule: { table, chain: into, args: [...args, ...mark, "-j", ...target] },
      insert: target[0] === "ACCEPT",
      title,
    },
  });
  const filter = (id: string, title: string, args: string[], target = ["ACCEPT"]) =>
    rule("filter", chain, `net.filter.rule[${id}]`, title, args, target);
  const ipOf = new Map(containerSpecs(c).map((s) => [s.name, s.ip]));
  const forwards = c.network.forwards.map((f) => ({ ...f, ip: ipOf.get(f.container) ?? "" }));
  const metadata = c.network.allowMetadata ? [] : ["!", "-d", LINK_LOCAL];
  const filterRules: PlannedRule[] = [
    filter(
      "out",
      c.network.allowMetadata
        ? `Accepting traffic from ${bridge} to other interfaces`
        : `Accepting traffic from ${bridge} to other interfaces, except to link-local ${LINK_LOCAL}`,
      ["-i", bridge, "!", "-o", bridge, ...metadata],
    ),
    filter("return", `Accepting established and related traffic back to ${bridge}`, [
      "-o",
      bridge,
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    filter("internal", `Accepting traffic between containers on ${bridge}`, ["-i", bridge, "-o", bridge]),
    ...forwards.map((f) =>
      filter(
        `forward:${f.proto}/${f.hostPort}`,
        `Accepting forwarded ${f.proto} port ${f.hostPort} to ${f.container} port ${f.port}`,
        [
          "-d",
          f.ip,
          "-o",
          bridge,
          "-p",
          f.proto,
          "-m",
          f.proto,
          "--dport",
          String(f.port),
          "-m",
          "conntrack",
          "--ctstate",
          "DNAT",
        ],
      ),
    ),
    ...c.network.allowFrom.map((from) =>
      filter(`from:${from}`, `Accepting connections from ${from} into ${bridge}`, ["-s", from, "-o", bridge]),
    ),
    // What is left from the lab (link-local, unless allowed) is refused at once; what is left into
    // it (new connections from other networks) is dropped, whatever FORWARD's policy says.
    filter("refuse-out", `Rejecting other traffic from ${bridge}`, ["-i", bridge], ["REJECT"]),
    filter(
      "refuse-in",
      `Dropping new connections into ${bridge} from other networks`,
      ["-o", bridge],
      ["DROP"],
    ),
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
  // What the lab sends to the host itself: replies and the listed ports, nothing else.
  const inputChain = `${chain}-IN`;
  const input = (id: string, title: string, args: string[], target = ["ACCEPT"]) =>
    rule("filter", inputChain, `net.input.rule[${id}]`, title, args, target);
  const inputRules: PlannedRule[] = [
    input("replies", `Accepting replies from ${bridge} to the host`, [
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    ...c.network.hostPorts.map((hp) => {
      const [proto = "tcp", port = ""] = hp.split("/");
      return input(`port:${hp}`, `Accepting ${hp} from ${bridge} to the host`, [
        "-p",
        proto,
        "-m",
        proto,
        "--dport",
        port,
      ]);
    }),
    input("refuse", `Rejecting other traffic from ${bridge} to the host`, [], ["REJECT"]),
    {
      id: "net.input.jump",
      params: {
        rule: { table: "filter", chain: "INPUT", args: ["-i", bridge, ...mark, "-j", inputChain] },
        insert: true,
        title: `Jumping from INPUT to ${inputChain} for traffic from ${bridge}`,
      },
    },
  ];
  const plan: NetPlan = {
    claim: {
      lab: c.lab,
      labDir: labDir(c),
      bridge,
      chains: [chain, inputChain, ...(c.network.forwards.length > 0 ? [`${chain}-DNAT`] : [])],
      subnet,
    },
    bridge: { bridge },
    address: { bridge, address },
    forwarding: { holder: labHolder(c) },
    filterChain: { table: "filter", chain },
    filterRules,
    inputChain: { table: "filter", chain: inputChain },
    inputRules,
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
  if (forwards.length > 0) {
    // Only traffic addressed to the host itself and arriving from elsewhere than the lab is
    // forwarded (addrtype LOCAL): the host's own connections and the lab's are left alone.
    const dnatChain = `${chain}-DNAT`;
    plan.dnat = {
      chain: { table: "nat", chain: dnatChain },
      rules: [
        ...forwards.map((f) =>
          rule(
            "nat",
            dnatChain,
            `net.dnat.rule[${f.proto}/${f.hostPort}]`,
            `Forwarding ${f.proto} port ${f.hostPort} of the host to ${f.container} (${f.ip}:${f.port})`,
            ["-p", f.proto, "-m", f.proto, "--dport", String(f.hostPort)],
            ["DNAT", "--to-destination", `${f.ip}:${f.port}`],
          ),
        ),
        {
          id: "net.dnat.jump",
          params: {
            rule: {
              table: "nat",
              chain: "PREROUTING",
              args: ["!", "-i", bridge, "-m", "addrtype", "--dst-type", "LOCAL", ...mark, "-j", dnatChain],
            },
            insert: false,
            title: `Jumping from PREROUTING to ${dnatChain} for traffic to the host's addresses`,
          },
        },
      ],
    };
  }
  return plan;
}
