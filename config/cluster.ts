// A lab across hosts (`cluster`), split into one share per host: which containers each host holds,
// its part of the lab's addresses, its bridge's address, and its share as an ordinary aplspawn
// config (the same schema, no `cluster`), so the unit on each host is today's aplspawn. Pure: the
// hosts come from the inventory (src/cluster/hosts.ts), nothing here reads the host.
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { type ContainerSpec, containerSpecs } from "./containers.js";
import type { Problem } from "./diagnostic.js";
import { isFileImage, labImages } from "./images.js";
import { intToIp, ipToInt, parseCidr } from "./ip.js";
import { imagePath } from "./paths.js";
import type { Config, ImageSection } from "./schema.js";

/** A host of the cluster's inventory: its name there, the address its peers reach it at, its groups. */
export interface ClusterHost {
  name: string;
  /** IPv4: its `aplspawn_address` host variable, else `ansible_host`, else its name. */
  address: string;
  groups: string[];
  /** How Ansible reaches it (its ansible_* connection variables): the one inventory jumps through it. */
  ssh?: {
    host: string;
    user?: string;
    port?: number;
    key?: string;
    args?: string;
    /** Its `aplspawn_command` host variable: the program that is aplspawn there (default aplspawn). */
    aplspawn?: string;
  };
}

/** What one host holds of the lab. */
export interface HostShare {
  host: string;
  /** Where the peers' VXLAN packets go (its address on the hosts' network). */
  address: string;
  /** Its bridge's address with the lab's prefix (the first host's is network.address). */
  bridgeAddress: string;
  /** How Ansible reaches it (ClusterHost.ssh). */
  ssh?: ClusterHost["ssh"];
  /** Its containers, with their lab addresses. */
  containers: { name: string; ip: string; set?: string; user: string }[];
  /** Its share as a config for aplspawn there (parses with configSchema; no cluster, no provision). */
  config: Record<string, unknown>;
}

/** The whole split: the shares (hosts holding nothing left out) and the overlay's identity. */
export interface ClusterPlan {
  lab: string;
  /** cluster.overlay: a VXLAN between the bridges, or plain routes between hosts on one L2. */
  overlay: "vxlan" | "routes";
  /** The lab's identity on the hosts: the VXLAN's VNI, and the suffix of the overlay's names. */
  vni: number;
  /** The VXLAN interface's name on every host (at most 15 characters). */
  vxlan: string;
  /** UDP port of the VXLAN (IANA's). */
  port: number;
  /** The overlay's iptables chain on every host (the VXLAN's filter, or the routes' containment). */
  chain: string;
  shares: HostShare[];
}

/** IANA's VXLAN port: it must be open between the hosts. */
export const VXLAN_PORT = 4789;

/** What VXLAN over IPv4 adds to a frame: outer IPv4, UDP, VXLAN and inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;

/**
 * The routing protocol number of an overlay of routes' /32 routes (`ip route … proto 165`, a number
 * no routing daemon uses): a share's check for routes that overlap its subnet passes over them
 * (src/net/routes.ts), as they are the lab's own.
 */
export const ROUTES_PROTO = 165;

/** What the overlay adds to each of the lab's packets on the hosts' network: routes add nothing. */
export const overlayOverhead = (c: Pick<Config, "cluster">) =>
  c.cluster?.overlay === "routes" ? 0 : VXLAN_OVERHEAD;

/** The lab's links' MTU across hosts unless network.mtu says: a 1500 network less the overlay's. */
export const clusterMtu = (c: Pick<Config, "network" | "cluster">) =>
  c.network.mtu ?? 1500 - overlayOverhead(c);

/**
 * The lab's VXLAN network identifier: the first 24 bits of SHA-256("aplspawn-vni:" + lab), 0 and
 * 2^24-1 moved to 1 and 2^24-2. The same lab name gives the same VNI on every control node; two
 * labs on the same hosts get different ones unless their hashes collide (1 in 16 million).
 */
export function vniOf(lab: string): number {
  const v = createHash("sha256").update(`aplspawn-vni:${lab}`).digest().readUIntBE(0, 3);
  return Math.min(Math.max(v, 1), 0xfffffe);
}

/** Where the share's files live on its host: the config, the lab key, the inventory aplspawn writes. */
export const shareDir = (c: Pick<Config, "workdir" | "lab">) => `${c.workdir}/.cluster/${c.lab}`;

/** A lab image the control node copies to its hosts: a file:// one (its path is the control node's). */
export interface CopiedImage {
  /** The file on the control node. */
  src: string;
  /** Where each host keeps its copy (hostImagePath): kept after `run down`, removed by `--purge`. */
  dest: string;
}

/** Where the hosts keep the lab's copies of the control node's images (removed by `run down --purge`). */
export const hostImagesDir = (c: Pick<Config, "workdir" | "lab">) => `${c.workdir}/.cluster/${c.lab}.images`;

/** Where a host keeps its copy of the control node's image file: named by the path and its base name. */
export const hostImagePath = (c: Pick<Config, "workdir" | "lab">, src: string) =>
  `${hostImagesDir(c)}/${createHash("sha256").update(src).digest("hex").slice(0, 12)}-${basename(src)}`;

/**
 * The lab's file:// images (the config's and the sets'), each once: a file:// URL names a file of
 * the control node's, which gets (or builds) and verifies it, and copies it to every host. An
 * image the hosts download or pull themselves (https, image.oci, image.server) is not copied.
 */
export const copiedImages = (c: Config): CopiedImage[] =>
  labImages(c)
    .filter((img) => isFileImage(img.section))
    .map((img) => ({ src: img.path, dest: hostImagePath(c, img.path) }));

/**
 * An image section as a host's share has it: a file:// image is the host's copy, pinned to the
 * digest the control node verified (`digests`, by the control node's path; without one, as the
 * config gives it), and never built there.
 */
function shareImage(c: Config, s: ImageSection, digests: Readonly<Record<string, string>>): ImageSection {
  if (!isFileImage(s)) return s;
  const src = imagePath(c, s);
  const { build: _build, checksums: _sums, checksumsKeyring: _keyring, ...rest } = s;
  const sha256 = digests[src] ?? s.sha256;
  return {
    ...rest,
    url: `file://${hostImagePath(c, src)}`,
    ...(sha256 ? { sha256 } : {}),
  } as ImageSection;
}

/** The hosts a group holds, in the inventory's order. */
const members = (hosts: readonly ClusterHost[], group: string) =>
  hosts.filter((h) => h.groups.includes(group));

/**
 * Which host holds how many containers of which set: without sets, containers.count spread evenly
 * over cluster.group's hosts (the first ones one more); with sets, each set whole on the host of its
 * group (sets[].hosts, else cluster.group) that holds the fewest so far, as a set's names are made
 * from its index within the set.
 */
function placement(
  c: Config,
  hosts: readonly ClusterHost[],
  problems: Problem[],
): Map<string, { set?: number; count: number }[]> {
  const cl = c.cluster!;
  const out = new Map<string, { set?: number; count: number }[]>();
  const load = (h: string) => (out.get(h) ?? []).reduce((n, p) => n + p.count, 0);
  const put = (h: string, p: { set?: number; count: number }) => out.set(h, [...(out.get(h) ?? []), p]);
  const sets = c.containers.sets;
  if (!sets) {
    const own = members(hosts, cl.group);
    if (own.length === 0) {
      problems.push({ at: ["cluster", "group"], message: `the inventory has no host in group ${cl.group}` });
      return out;
    }
    const n = c.containers.count;
    own.forEach((h, i) => {
      const count = Math.floor(n / own.length) + (i < n % own.length ? 1 : 0);
      if (count > 0) put(h.name, { count });
    });
    return out;
  }
  sets.forEach((s, i) => {
    const group = s.hosts ?? cl.group;
    const own = members(hosts, group);
    if (own.length === 0) {
      problems.push({
        at: s.hosts ? ["containers", "sets", i, "hosts"] : ["cluster", "group"],
        message: `the inventory has no host in group ${group}`,
      });
      return;
    }
    const least = own.reduce((a, b) => (load(b.name) < load(a.name) ? b : a));
    put(least.name, { set: i, count: s.count });
  });
  return out;
}

/**
 * Split the lab over the hosts. Addresses: the hosts in inventory order each take the next block of
 * containers.ipRange (never network.address's own); the first host's bridge keeps network.address,
 * the others' take the subnet's last free addresses, top down. Problems name the key to change.
 */
export function splitLab(
  c: Config,
  hosts: readonly ClusterHost[],
  digests: Readonly<Record<string, string>> = {},
): { plan?: ClusterPlan; problems: Problem[] } {
  const problems: Problem[] = [];
  if (!c.cluster) return { problems: [{ at: ["cluster"], message: "the config has no cluster section" }] };
  for (const h of hosts)
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(h.address) || h.address.split(".").some((o) => Number(o) > 255))
      problems.push({
        at: ["cluster", "inventory"],
        message: `host ${h.name}: its address ${h.address} is not an IPv4 address (set aplspawn_address or ansible_host to the address its peers reach it at)`,
      });
  const placed = placement(c, hosts, problems);
  const holders = hosts.filter((h) => placed.has(h.name));
  const net = parseCidr(c.network.address);
  const gw = ipToInt(net.address);
  const lastHost = net.prefix >= 31 ? net.broadcast : net.broadcast - 1;
  const rangeEnd = ipToInt(c.containers.ipRange[1]);
  // The lab's containers as one host would make them: names, users and sets, in set order.
  const specs = containerSpecs(c);
  let next = ipToInt(c.containers.ipRange[0]);
  const used = new Set<number>([gw]);
  const blocks = holders.map((h) => {
    const mine: ContainerSpec[] = (placed.get(h.name) ?? []).flatMap((p) =>
      p.set === undefined ? [] : specs.filter((s) => s.set === c.containers.sets?.[p.set!]?.name),
    );
    const count = (placed.get(h.name) ?? []).reduce((n, p) => n + p.count, 0);
    const ips: number[] = [];
    while (ips.length < count) {
      if (next !== gw) ips.push(next);
      next++;
    }
    for (const ip of ips) used.add(ip);
    return { h, mine, count, ips };
  });
  if (next - 1 > rangeEnd)
    problems.push({
      at: ["containers", "ipRange"],
      message: `the hosts' shares need addresses up to ${intToIp(next - 1)}, past the range's end ${intToIp(rangeEnd)}`,
    });
  // The other hosts' bridges: the subnet's last addresses no container and no bridge holds.
  let top = lastHost;
  const bridges = blocks.map((_, i) => {
    if (i === 0) return gw;
    while (used.has(top) && top > net.network) top--;
    used.add(top);
    return top--;
  });
  if (bridges.some((b) => b <= net.network))
    problems.push({
      at: ["network", "address"],
      message: `the subnet ${intToIp(net.network)}/${net.prefix} has no free address left for each host's bridge (one per host besides the first)`,
    });
  if (problems.length > 0) return { problems };
  const shares = blocks.map(({ h, mine, count, ips }, i): HostShare => {
    const bridgeAddress = `${intToIp(bridges[i]!)}/${net.prefix}`;
    const ipRange: [string, string] = [intToIp(ips[0]!), intToIp(ips.at(-1)!)];
    // Without sets, names follow the address (prefix + last octet), as one host names them.
    const containers = c.containers.sets
      ? mine.map((s, k) => ({ name: s.name, ip: intToIp(ips[k]!), set: s.set!, user: s.user }))
      : ips.map((ip) => ({
          name: `${c.containers.prefix}${intToIp(ip).split(".")[3]}`,
          ip: intToIp(ip),
          user: c.containers.user,
        }));
    return {
      host: h.name,
      address: h.address,
      ...(h.ssh ? { ssh: h.ssh } : {}),
      bridgeAddress,
      containers,
      config: shareConfig(c, digests, {
        bridgeAddress,
        ipRange,
        count,
        names: containers.map((k) => k.name),
        sets: (placed.get(h.name) ?? []).flatMap((p) => (p.set === undefined ? [] : [p.set])),
      }),
    };
  });
  const vni = vniOf(c.lab);
  const id = vni.toString(16).padStart(6, "0");
  const overlay = c.cluster.overlay;
  return {
    plan: {
      lab: c.lab,
      overlay,
      vni,
      vxlan: `aplvx${id}`,
      port: VXLAN_PORT,
      // The VXLAN's filter keeps the name it had before routes existed: a lab up then goes down.
      chain: `${overlay === "routes" ? "APLRT" : "APLVX"}${id.toUpperCase()}`,
      shares,
    },
    problems,
  };
}

/**
 * With routes, what each host routes to its peers: every lab address another host holds (its
 * containers' and its bridge's), with that host's name and its address on the hosts' network.
 */
export function remoteAddresses(
  plan: Pick<ClusterPlan, "shares">,
): Record<string, { addr: string; via: string; host: string }[]> {
  const own = plan.shares.map((s) => ({
    host: s.host,
    via: s.address,
    addrs: [...s.containers.map((k) => k.ip), s.bridgeAddress.split("/")[0]!],
  }));
  return Object.fromEntries(
    own.map((me) => [
      me.host,
      own
        .filter((o) => o.host !== me.host)
        .flatMap((o) => o.addrs.map((addr) => ({ addr, via: o.via, host: o.host }))),
    ]),
  );
}

/** One host's share as a config: the lab's keys, its own addresses, containers and forwards. */
function shareConfig(
  c: Config,
  digests: Readonly<Record<string, string>>,
  s: { bridgeAddress: string; ipRange: [string, string]; count: number; names: string[]; sets: number[] },
): Record<string, unknown> {
  const { sets, count: _count, prefix, ipRange: _range, sshKey: _key, ...containers } = c.containers;
  const dir = shareDir(c);
  return {
    lab: c.lab,
    workdir: c.workdir,
    network: {
      ...c.network,
      address: s.bridgeAddress,
      mtu: clusterMtu(c),
      forwards: c.network.forwards.filter((f) => s.names.includes(f.container)),
    },
    image: shareImage(c, c.image, digests),
    containers: {
      ...containers,
      ...(sets
        ? {
            sets: s.sets.map((i) => {
              const { hosts: _hosts, image, ...set } = sets[i]!;
              return { ...set, ...(image ? { image: shareImage(c, image, digests) } : {}) };
            }),
          }
        : { count: s.count, prefix }),
      ipRange: s.ipRange,
      // The control node's lab key, copied there: the one inventory reaches every container with it.
      sshKey: `${dir}/id_ed25519`,
    },
    inventory: { ...c.inventory, file: `${dir}/inventory.ini`, format: "ini", ping: false },
  };
}
