// The network a config asks for, as task parameters: which rules, in which chains. The netup
// workflow composes its tasks from it, and status runs those very tasks' checks, so the two never
// disagree. No I/O here.
import { containerSpecs } from "../config/containers.js";
import { subnetOf } from "../config/ip.js";
import { labDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { labHolder } from "../src/lab/holds.js";
import { ruleComment } from "../src/net/iptables.js";
import { LAB_BRIDGE_GROUP } from "../src/net/links.js";
import type { BridgeParams } from "../tasks/net/bridge.js";
import type { BridgeAddressParams } from "../tasks/net/bridge-address.js";
import type { BridgeGroupParams } from "../tasks/net/bridge-group.js";
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
  /** The bridge marked as a lab's, for every lab's rules. */
  group: BridgeGroupParams;
  forwarding: ForwardingParams;
  filterChain: ChainParams;
  /** Our chain for what the lab sends beyond the host, and its rules; made before the filter chain's jump into it. */
  outChain: ChainParams;
  outRules: PlannedRule[];
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

/** Link-local addresses: where clouds serve instance metadata (169.254.169.254) and credentials. */
const LINK_LOCAL = "169.254.0.0/16";

/**
 * What is not the world, though routed like it: where a LAN, the host's other bridges (docker0's
 * 172.17.0.0/16, libvirt's 192.168.122.0/24), a carrier's or a tailnet's 100.64.0.0/10 and a cloud's
 * metadata service live. The lab reaches them only through network.allowTo (link-local also
 * through allowMetadata). IPv4 only: the bridge takes no part in IPv6 (tasks/net/bridge-ipv6.ts).
 */
const NOT_THE_WORLD: [cidr: string, what: string][] = [
  ["10.0.0.0/8", "private, RFC 1918"],
  ["172.16.0.0/12", "private, RFC 1918"],
  ["192.168.0.0/16", "private, RFC 1918"],
  ["100.64.0.0/10", "shared address space (CGNAT), RFC 6598"],
  [LINK_LOCAL, "link-local, RFC 3927"],
  ["192.0.0.0/24", "IETF protocol assignments, RFC 6890"],
  ["198.18.0.0/15", "benchmarking, RFC 2544"],
  ["224.0.0.0/3", "multicast and reserved"],
];

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

/**
 * Where a rule goes in its chain. Each of our chains is a top part whose rules only accept, return
 * or jump into a chain that does (so their order among themselves never matters), over a bottom
 * part whose rules only refuse; rules that overlap and would decide differently are made exclusive
 * by their matches instead of by their order. So a rule put back after drift works wherever it
 * lands in its part: on top (inserted) or at the bottom (appended).
 */
type Place = "top" | "bottom";

function rule(
  x: PlanContext,
  at: { table: "filter" | "nat"; chain: string; id: string },
  title: string,
  args: string[],
  target: string[],
  place: Place,
): PlannedRule {
  return {
    id: at.id,
    params: {
      rule: { table: at.table, chain: at.chain, args: [...args, ...x.mark, "-j", ...target] },
      insert: place === "top",
      title,
    },
  };
}

/** A jump from a built-in chain into one of ours, for `what` (e.g. "traffic from br0"). */
function jump(
  x: PlanContext,
  id: string,
  from: { table: "filter" | "nat"; chain: string },
  into: string,
  args: string[],
  what: string,
  place: Place,
): PlannedRule {
  return rule(x, { ...from, id }, `Jumping from ${from.chain} to ${into} for ${what}`, args, [into], place);
}

/** Matches an interface in the labs' group (`--dst-group`: the one the packet leaves by), or not (`negate`). */
const labBridge = (dir: "--src-group" | "--dst-group", negate = false) => [
  "-m",
  "devgroup",
  ...(negate ? ["!"] : []),
  dir,
  `0x${LAB_BRIDGE_GROUP.toString(16)}`,
];

/**
 * The lab's forwarded traffic: its filter chain's rules, then the jumps from FORWARD into it.
 *
 * A packet from one lab's bridge to another's passes both labs' jumps, in the order the labs came
 * up, and an accept in the first chain ends FORWARD before the second is seen. So neither chain
 * accepts it: the sender's refuses what leaves for a lab's bridge (`--dst-group`), the receiver's
 * lets nothing new in from one (`--src-group`), and both drop it, whichever comes first. What only
 * one lab sees (its containers to the host's other networks, those networks to it) that lab
 * decides alone.
 */
function forwardRules(x: PlanContext, outChain: string): PlannedRule[] {
  const { c, bridge, chain, subnet } = x;
  const filter = (id: string, title: string, args: string[], target: string[], place: Place) =>
    rule(x, { table: "filter", chain, id: `net.filter.rule[${id}]` }, title, args, target, place);
  const accept = (id: string, title: string, args: string[]) => filter(id, title, args, ["ACCEPT"], "top");
  // From a container with its own address, to another network that is not a lab's bridge.
  const outward = ["-s", subnet, "-i", bridge, "!", "-o", bridge, ...labBridge("--dst-group", true)];
  // Into the lab from another network that is not a lab's bridge.
  const inward = ["!", "-i", bridge, "-o", bridge, ...labBridge("--src-group", true)];
  const allowTo = [...new Set([...c.network.allowTo, ...(c.network.allowMetadata ? [LINK_LOCAL] : [])])];
  return [
    accept("internal", `Accepting traffic between containers on ${bridge}`, [
      "-s",
      subnet,
      "-i",
      bridge,
      "-o",
      bridge,
    ]),
    accept("return", `Accepting established and related traffic back to ${bridge}`, [
      ...inward,
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    accept("replies", `Accepting replies and related traffic from ${bridge} to other networks`, [
      ...outward,
      "-m",
      "conntrack",
      "--ctstate",
      "RELATED,ESTABLISHED",
    ]),
    filter(
      "out",
      `Passing traffic from ${bridge} to other networks to ${outChain}, which accepts the world`,
      outward,
      [outChain],
      "top",
    ),
    ...allowTo.map((to) =>
      accept(
        `to:${to}`,
        to === LINK_LOCAL && !c.network.allowTo.includes(to)
          ? `Accepting traffic from ${bridge} to link-local ${to} (network.allowMetadata)`
          : `Accepting traffic from ${bridge} to ${to} (network.allowTo)`,
        [...outward, "-d", to],
      ),
    ),
    ...x.forwards.map((f) =>
      accept(
        `forward:${f.proto}/${f.hostPort}`,
        `Accepting forwarded ${f.proto} port ${f.hostPort} to ${f.container} port ${f.port}`,
        [
          ...inward,
          "-d",
          f.ip,
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
      accept(`from:${from}`, `Accepting connections from ${from} into ${bridge}`, ["-s", from, ...inward]),
    ),
    // A source the lab was not given is dropped (a REJECT would answer the address it claims).
    filter(
      "spoofed",
      `Dropping traffic from ${bridge} with a source outside ${subnet}`,
      ["-i", bridge, "!", "-s", subnet],
      ["DROP"],
      "bottom",
    ),
    // The rest from the lab is refused at once; to another lab it is dropped, as that lab's own
    // chain would; new connections into the lab are dropped, whatever FORWARD's policy says.
    filter(
      "refuse-out",
      `Rejecting other traffic from ${bridge}`,
      ["-s", subnet, "-i", bridge, ...labBridge("--dst-group", true)],
      ["REJECT"],
      "bottom",
    ),
    filter(
      "refuse-lab",
      `Dropping traffic from ${bridge} to other labs' bridges`,
      ["-s", subnet, "-i", bridge, ...labBridge("--dst-group")],
      ["DROP"],
      "bottom",
    ),
    filter(
      "refuse-in",
      `Dropping new connections into ${bridge} from other networks and labs`,
      ["-o", bridge],
      ["DROP"],
      "bottom",
    ),
    // Two jumps, one per direction, so the chain sees only this bridge's traffic. Inserted on top:
    // a host firewall's final REJECT in FORWARD must not shadow them. The built-in chain's policy
    // is never touched.
    jump(
      x,
      "net.filter.jump[in]",
      { table: "filter", chain: "FORWARD" },
      chain,
      ["-i", bridge],
      `traffic from ${bridge}`,
      "top",
    ),
    jump(
      x,
      "net.filter.jump[out]",
      { table: "filter", chain: "FORWARD" },
      chain,
      ["-o", bridge],
      `traffic to ${bridge}`,
      "top",
    ),
  ];
}

/**
 * What the lab sends beyond the host, to a network that is not a lab's bridge: what is not the
 * world returns to the filter chain (accepted there only by allowTo, else rejected), the rest is
 * accepted.
 */
function outRules(x: PlanContext, outChain: string): PlannedRule[] {
  const out = (id: string, title: string, args: string[], target: string[], place: Place) =>
    rule(x, { table: "filter", chain: outChain, id: `net.out.rule[${id}]` }, title, args, target, place);
  return [
    ...NOT_THE_WORLD.map(([cidr, what]) =>
      out(
        `not:${cidr}`,
        `Returning traffic from ${x.bridge} to ${cidr} (${what}) to ${x.chain}`,
        ["-d", cidr],
        ["RETURN"],
        "top",
      ),
    ),
    out("world", `Accepting traffic from ${x.bridge} to the world`, [], ["ACCEPT"], "bottom"),
  ];
}

/**
 * What the lab sends to the host itself: replies and the listed ports, from the lab's own
 * addresses; the rest refused at once, and what claims another source dropped.
 */
function inputRules(x: PlanContext, inputChain: string): PlannedRule[] {
  const { bridge, subnet } = x;
  const input = (id: string, title: string, args: string[], target: string[], place: Place) =>
    rule(x, { table: "filter", chain: inputChain, id: `net.input.rule[${id}]` }, title, args, target, place);
  return [
    input(
      "replies",
      `Accepting replies from ${bridge} to the host`,
      ["-s", subnet, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"],
      ["ACCEPT"],
      "top",
    ),
    ...x.c.network.hostPorts.map((hp) => {
      const [proto = "tcp", port = ""] = hp.split("/");
      return input(
        `port:${hp}`,
        `Accepting ${hp} from ${bridge} to the host`,
        ["-s", subnet, "-p", proto, "-m", proto, "--dport", port],
        ["ACCEPT"],
        "top",
      );
    }),
    input(
      "spoofed",
      `Dropping traffic from ${bridge} to the host with a source outside ${subnet}`,
      ["!", "-s", subnet],
      ["DROP"],
      "bottom",
    ),
    input(
      "refuse",
      `Rejecting other traffic from ${bridge} to the host`,
      ["-s", subnet],
      ["REJECT"],
      "bottom",
    ),
    jump(
      x,
      "net.input.jump",
      { table: "filter", chain: "INPUT" },
      inputChain,
      ["-i", bridge],
      `traffic from ${bridge}`,
      "top",
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
      // Never towards the lab's own subnet: across hosts (cluster.overlay routes) its containers
      // reach each other through the hosts' network with their own addresses. On one host nothing
      // of the subnet lies beyond the bridge, so this changes nothing there.
      ["-s", subnet, "!", "-d", subnet, "!", "-o", bridge],
      ["MASQUERADE"],
      "bottom",
    ),
    jump(
      x,
      "net.nat.jump",
      { table: "nat", chain: "POSTROUTING" },
      chain,
      ["-s", subnet],
      `traffic from ${subnet}`,
      "bottom",
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
        "bottom",
      ),
    ),
    jump(
      x,
      "net.dnat.jump",
      { table: "nat", chain: "PREROUTING" },
      dnatChain,
      ["!", "-i", x.bridge, "-m", "addrtype", "--dst-type", "LOCAL"],
      `traffic to the host's addresses`,
      "bottom",
    ),
  ];
}

/**
 * The network of a config. The NAT chain has the same name as the filter chain (`network.chain`,
 * default NSPAWN), in the nat table: chain names are per table, and the original tool's output
 * ("NAT rules for chain NSPAWN") names one chain for both. The chains for the host, for what
 * leaves the host and for forwards are named after it too.
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
  const outChain = `${chain}-OUT`;
  const dnatChain = `${chain}-DNAT`;
  return {
    claim: {
      lab: c.lab,
      labDir: labDir(c),
      bridge,
      chains: [chain, inputChain, outChain, ...(x.forwards.length > 0 ? [dnatChain] : [])],
      subnet: x.subnet,
    },
    bridge: { bridge },
    address: { bridge, address },
    group: { bridge, group: LAB_BRIDGE_GROUP },
    forwarding: { holder: labHolder(labDir(c)) },
    filterChain: { table: "filter", chain },
    outChain: { table: "filter", chain: outChain },
    outRules: outRules(x, outChain),
    filterRules: forwardRules(x, outChain),
    inputChain: { table: "filter", chain: inputChain },
    inputRules: inputRules(x, inputChain),
    ...(c.network.nat ? { nat: { chain: { table: "nat" as const, chain }, rules: natRules(x) } } : {}),
    ...(x.forwards.length > 0
      ? { dnat: { chain: { table: "nat" as const, chain: dnatChain }, rules: dnatRules(x, dnatChain) } }
      : {}),
  };
}
