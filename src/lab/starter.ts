// `aplspawn init`: a starter config whose lab name, bridge, chain, subnet and container names
// collide with no other lab on this host (their claims, their directories) and no route or
// interface. The picking is pure (pickStarter); what is taken is read from the host (takenOnHost).
import { parseCidr } from "../../config/ip.js";
import type { HostContext } from "../host/host.js";
import { hostRoutes, routeOverlaps } from "../net/routes.js";
import { currentNetns, liveClaims, overlaps } from "./claims.js";

/** What other labs and the host already have. */
export interface Taken {
  /** Lab names (claims, and directories in the default workdir). */
  labs: string[];
  /** Interfaces in this network namespace and bridges other labs claim in it. */
  links: string[];
  /** iptables chains other labs claim in this network namespace. */
  chains: string[];
  /** Subnets other labs claim in this network namespace. */
  subnets: string[];
  /** Route destinations here ("10.0.0.0/8 dev eth0 …" with their address ranges). */
  routes: { first: number; last: number; label: string }[];
  /** Container names other labs claim (host-wide). */
  names: string[];
}

/** What a starter config sets. */
export interface Starter {
  lab: string;
  bridge: string;
  chain: string;
  address: string;
  prefix: string;
}

// The schema's lab name (config/schema.ts).
const LAB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** The first free names and subnet; `lab` is the name the user asked for (refused when taken). */
export function pickStarter(t: Taken, lab?: string): Starter {
  if (lab !== undefined) {
    if (!LAB_NAME.test(lab) || lab.includes(".."))
      throw new Error(`--lab: "${lab}" must be 1-32 letters, digits, '.', '_' or '-'`);
    if (t.labs.includes(lab)) throw new Error(`--lab: a lab named ${lab} exists on this host already`);
  }
  const name =
    lab ??
    ["default", ...Array.from({ length: 98 }, (_, i) => `lab${i + 2}`)].find((n) => !t.labs.includes(n));
  if (!name) throw new Error("no free lab name among default, lab2 … lab99; give one with --lab");
  const i = firstFree((n) => !t.links.includes(`nspawnd${n}`) && !t.chains.includes(chainOf(n)));
  // Container names are prefix + the address's last octet: a prefix no other lab's names start with.
  const base =
    name === "default"
      ? "aplspawn"
      : `${name
          .toLowerCase()
          .replace(/[^a-z0-9-]/g, "-")
          .slice(0, 30)}-`;
  const first = /^[a-z]/.test(base) ? base : `lab-${base}`;
  const free = (p: string) => !t.names.some((n) => n.startsWith(p));
  const prefix = [first, ...Array.from({ length: 98 }, (_, k) => `${first}${k + 2}-`)].find(free);
  if (!prefix) throw new Error(`no free container name prefix from ${first}`);
  const address = subnets().find(
    (s) =>
      !t.subnets.some((o) => overlaps(s, o)) &&
      !t.routes.some((r) => routeOverlaps({ ...r, dev: undefined }, s)),
  );
  if (!address) throw new Error("no free /26 in 10.10.0.0/16: every one is another lab's or routed");
  return { lab: name, bridge: `nspawnd${i}`, chain: chainOf(i), address, prefix };
}

const chainOf = (i: number) => (i === 0 ? "NSPAWN" : `NSPAWN${i}`);

function firstFree(free: (i: number) => boolean): number {
  for (let i = 0; i < 1000; i++) if (free(i)) return i;
  throw new Error("no free bridge name among nspawnd0 … nspawnd999");
}

/** Candidate subnets: every /26 of 10.10.0.0/16, from 10.10.12.1/26 (the default) on. */
function* subnetsGen(): Generator<string> {
  for (let k = 0; k < 256; k++)
    for (let fourth = 0; fourth < 256; fourth += 64) yield `10.10.${(k + 12) % 256}.${fourth + 1}/26`;
}
const subnets = () => [...subnetsGen()];

/** What other labs and this host have, as far as this user may read (claims are root's). */
export async function takenOnHost(ctx: HostContext, workdir: string): Promise<Taken> {
  const claims = await liveClaims(ctx).catch(() => []);
  const netns = await currentNetns(ctx.host);
  const linksRun = await ctx.host.exec("ip", ["-j", "link", "show"], {
    allowFail: true,
    readOnly: true,
    signal: ctx.signal,
  });
  const links = (JSON.parse(linksRun.stdout || "[]") as { ifname: string }[]).map((l) => l.ifname);
  const dirs = await ctx.host.fs.readdir(workdir).catch(() => [] as string[]);
  const out: Taken = {
    labs: [...dirs.filter((d) => d !== "images" && d !== "userns"), ...claims.map((c) => c.lab)],
    links,
    chains: [],
    subnets: [],
    routes: await hostRoutes(ctx),
    names: [],
  };
  for (const c of claims)
    if (c.part === "containers") out.names.push(...c.names);
    else if (c.netns === netns) {
      out.links.push(c.bridge);
      out.chains.push(...c.chains);
      out.subnets.push(c.subnet);
    }
  return out;
}

/** The starter config's text: what init picked, and the defaults spelled out as comments. */
export function renderStarter(s: Starter, schemaFile?: string): string {
  const net = parseCidr(s.address);
  // Editors with yaml-language-server complete and check keys against the config's JSON Schema.
  const header = schemaFile ? `# yaml-language-server: $schema=${schemaFile}\n` : "";
  return `${header}# aplspawn lab ${s.lab}, written by \`aplspawn init\`: its names and subnet collide with no other
# lab on this host and no route. Every key is optional; README.md, "Config reference".
lab: ${s.lab}

network:
  bridge: ${s.bridge}
  address: ${s.address}
  chain: ${s.chain}
  # /${net.prefix}: containers get addresses from the 10th on (containers.ipRange to choose others).

containers:
  count: 3
  prefix: ${s.prefix}
  # user: test
  # concurrency: 10

inventory:
  file: inventory.txt
  # group: aplspawned
`;
}
