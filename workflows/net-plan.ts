// The network a config asks for, as task parameters: which rules, in which chains. The netup
// workflow composes its tasks from it, and status runs those very tasks' checks, so the two never
// disagree. No I/O here.
import { containerSpecs } from "../config/containers.js";
import { intToIp, parseCidr } from "../config/ip.js";
import { labDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { labHolder } from "../src/lab/holds.js";
import { ruleComment } from "../src/net/iptables.js";
import type { BridgeParams } from "../tasks/net/bridge.js";
import type { BridgeAddressParams } from "../tasks/net/bridge-address.js";
import type { NetClaimParams } from "../tasks/net/claim.js";
import type { ForwardingParams } from "../tasks/net/forwarding.js";
import type { ChainParams } from "../tasks/net/iptables-chain.js";
import type { RuleParams } from "../tasks/net/iptables-rule.js";

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

/** What every part of the plan works from. */
interface PlanContext {
  c: Config;
  bridge: string;
  chain: string;
  subnet: string;
  /** The lab's comment on every rule: iptables-save shows whose it is, and -C and -D match it too. */
  mark: string[];
  /** The port forwards, with their containers' addresses. */
  forwards: (Config["network"]["forwards"][number] & { ip: string })[];
}

// In our chains, what is accepted goes on top (inserted) and what is refused at the bottom
// (appended): no accept is of a kind a refusal is meant to stop, so a rule put back after drift
// lands where it works, whatever else is missing.
function rule(
  x: PlanContext,
  at: { table: "filter" | "nat"; chain: string; id: string },
  title: string,
  args: string[],
  target: string[] = ["ACCEPT"],
): PlannedRule {
  return {
    id: at.id,
    params: {
      rule: { table: at.table, chain: at.chain, args: [...args, ...x.mark, "-j", ...target] },
      insert: target[0] === "ACCEPT",
      title,
    },
  };
}

/** A jump from a built-in chain into one of ours. */
function jump(
  x: PlanContext,
  id: string,
  from: { table: "filter" | "nat"; chain: string },
  into: string,
  args: string[],
  title: string,
  insert: boolean,
): PlannedRule {
  return {
    id,
    params: {
      rule: { table: from.table, chain: from.chain, args: [...args, ...x.mark, "-j", into] },
      insert,
      title,
    },
  };
}

/** The lab's forwarded traffic: its filter chain's rules, then the jumps from FORWARD into it. */
function forwardRules(x: PlanContext): PlannedRule[] {
  const { c, bridge, chain } = x;
  const filter = (id: string, title: string, args: string[], target?: string[]) =>
    rule(x, { table: "filter", chain, id: `net.filter.rule[${id}]` }, title, args, target);
  const metadata = c.network.allowMetadata ? [] : ["!", "-d", LINK_LOCAL];
  return [
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
    ...x.forwards.map((f) =>
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
    jump(
      x,
      "net.filter.jump[in]",
      { table: "filter", chain: "FORWARD" },
      chain,
      ["-i", bridge],
      `Jumping from FORWARD to ${chain} for traffic from ${bridge}`,
      true,
    ),
    jump(
      x,
      "net.filter.jump[out]",
      { table: "filter", chain: "FORWARD" },
      chain,
      ["-o", bridge],
      `Jumping from FORWARD to ${chain} for traffic to ${bridge}`,
      true,
    ),
  ];
}

/** What the lab sends to the host itself: replies and the listed ports, nothing else. */
function inputRules(x: PlanContext, inputChain: string): PlannedRule[] {
  const { bridge } = x;
  const input = (id: string, title: string, args: string[], target?: string[]) =>
    rule(x, { table: "filter", chain: inputChain, id: `net.input.rule[${id}]` }, title, args, target);
  return [
    input("replies", `Accepting replies from ${bridge} to the host`, [
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    ...x.c.network.hostPorts.map((hp) => {
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
    jump(
      x,
      "net.input.jump",
      { table: "filter", chain: "INPUT" },
      inputChain,
      ["-i", bridge],
      `Jumping from INPUT to ${inputChain} for traffic from ${bridge}`,
      true,
    ),
  ];
}

/** Masquerading the subnet's traffic out (network.nat). Only POSTROUTING needs a jump. */
function natRules(x: PlanContext): PlannedRule[] {
  const { bridge, chain, subnet } = x;
  return [
    rule(
      x,
      { table: "nat", chain, id: "net.nat.rule[masquerade]" },
      `Masquerading ${subnet} leaving through interfaces other than ${bridge}`,
      ["-s", subnet, "!", "-o", bridge],
      ["MASQUERADE"],
    ),
    jump(
      x,
      "net.nat.jump",
      { table: "nat", chain: "POSTROUTING" },
      chain,
      ["-s", subnet],
      `Jumping from POSTROUTING to ${chain} for traffic from ${subnet}`,
      false,
    ),
  ];
}

/**
 * network.forwards: DNAT of the host's ports to containers, for traffic addressed to the host
 * itself (addrtype LOCAL) and arriving from elsewhere than the lab: the host's own connections and
 * the lab's are left alone.
 */
function dnatRules(x: PlanContext, dnatChain: string): PlannedRule[] {
  return [
    ...x.forwards.map((f) =>
      rule(
        x,
        { table: "nat", chain: dnatChain, id: `net.dnat.rule[${f.proto}/${f.hostPort}]` },
        `Forwarding ${f.proto} port ${f.hostPort} of the host to ${f.container} (${f.ip}:${f.port})`,
        ["-p", f.proto, "-m", f.proto, "--dport", String(f.hostPort)],
        ["DNAT", "--to-destination", `${f.ip}:${f.port}`],
      ),
    ),
    jump(
      x,
      "net.dnat.jump",
      { table: "nat", chain: "PREROUTING" },
      dnatChain,
      ["!", "-i", x.bridge, "-m", "addrtype", "--dst-type", "LOCAL"],
      `Jumping from PREROUTING to ${dnatChain} for traffic to the host's addresses`,
      false,
    ),
  ];
}

/**
 * The network of a config. The NAT chain has the same name as the filter chain (`network.chain`,
 * default NSPAWN), in the nat table: chain names are per table, and the original tool's output
 * ("NAT rules for chain NSPAWN") names one chain for both. The chains for the host and for
 * forwards are named after it too.
 */
export function netPlan(c: Config): NetPlan {
  const { bridge, address, chain } = c.network;
  const ipOf = new Map(containerSpecs(c).map((s) => [s.name, s.ip]));
  const x: PlanContext = {
    c,
    bridge,
    chain,
    subnet: subnetOf(address),
    mark: ["-m", "comment", "--comment", ruleComment(c.lab)],
    forwards: c.network.forwards.map((f) => ({ ...f, ip: ipOf.get(f.container) ?? "" })),
  };
  const inputChain = `${chain}-IN`;
  const dnatChain = `${chain}-DNAT`;
  return {
    claim: {
      lab: c.lab,
      labDir: labDir(c),
      bridge,
      chains: [chain, inputChain, ...(x.forwards.length > 0 ? [dnatChain] : [])],
      subnet: x.subnet,
    },
    bridge: { bridge },
    address: { bridge, address },
    forwarding: { holder: labHolder(c) },
    filterChain: { table: "filter", chain },
    filterRules: forwardRules(x),
    inputChain: { table: "filter", chain: inputChain },
    inputRules: inputRules(x, inputChain),
    ...(c.network.nat ? { nat: { chain: { table: "nat" as const, chain }, rules: natRules(x) } } : {}),
    ...(x.forwards.length > 0
      ? { dnat: { chain: { table: "nat" as const, chain: dnatChain }, rules: dnatRules(x, dnatChain) } }
      : {}),
  };
}
