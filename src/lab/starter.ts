// `aplspawn init`: a starter config whose lab name, bridge, chain, subnet and container names
// collide with no other lab on this host (their claims, what their journals record, their
// directories) and no route or interface. The picking is pure (pickStarter); what is taken is read
// from the host (takenOnHost).
import { join } from "node:path";
import { parseCidr } from "../../config/ip.js";
import type { Host, HostContext } from "../host/host.js";
import { hostRoutes, routeOverlaps } from "../net/routes.js";
import { Journal, journalPath } from "../runner/journal.js";
import { currentNetns, liveClaims, overlaps } from "./claims.js";
import { entryScope } from "./entries.js";

/** What other labs and the host already have. */
export interface Taken {
  /** Lab names (claims, and directories in the default workdir). */
  labs: string[];
  /** Interfaces in this network namespace, bridges other labs claim in it or their journals record. */
  links: string[];
  /** iptables chains other labs claim in this network namespace or their journals record. */
  chains: string[];
  /** Subnets other labs claim in this network namespace or their journals record (an address: /32). */
  subnets: string[];
  /** Route destinations here ("10.0.0.0/8 dev eth0 …" with their address ranges). */
  routes: { first: number; last: number; label: string }[];
  /** Container names other labs claim (host-wide) or their journals record. */
  names: string[];
}

/** A lab's network names: what the packaged default config gives the default lab. */
export interface LabNetwork {
  bridge: string;
  chain: string;
  /** network.address (CIDR). */
  subnet: string;
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

/**
 * What other labs and this host have, as far as this user may read (claims and journals are
 * root's). A lab that is down holds its names all the same: each lab directory of `workdir` adds
 * what its journal records, and the default lab's directory the default network (`defaultLab`),
 * which is what it has unless its config said otherwise.
 */
export async function takenOnHost(
  ctx: HostContext,
  workdir: string,
  defaultLab?: LabNetwork,
): Promise<Taken> {
  const claims = await liveClaims(ctx).catch(() => []);
  const netns = await currentNetns(ctx.host);
  const linksRun = await ctx.host.exec("ip", ["-j", "link", "show"], {
    allowFail: true,
    readOnly: true,
    signal: ctx.signal,
  });
  const links = (JSON.parse(linksRun.stdout || "[]") as { ifname: string }[]).map((l) => l.ifname);
  const dirs = (await ctx.host.fs.readdir(workdir).catch(() => [] as string[])).filter(
    (d) => d !== "images" && d !== "userns",
  );
  const out: Taken = {
    labs: [...dirs, ...claims.map((c) => c.lab)],
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
  for (const d of dirs) {
    const r = await recordedNames(ctx.host, join(workdir, d), d);
    out.links.push(...r.links);
    out.chains.push(...r.chains);
    out.subnets.push(...r.subnets);
    out.names.push(...r.names);
  }
  if (defaultLab && dirs.includes("default")) {
    out.links.push(defaultLab.bridge);
    out.chains.push(defaultLab.chain);
    out.subnets.push(defaultLab.subnet);
  }
  return out;
}

/**
 * The names a lab's journal records (its live entries, up or down: a lab that is down keeps its
 * containers' layers, host keys and addresses): bridges, chains, subnets, containers' addresses
 * (as /32) and names. Nothing when there is no journal or it cannot be read.
 */
export async function recordedNames(
  host: Host,
  labDir: string,
  lab: string,
): Promise<Pick<Taken, "links" | "chains" | "subnets" | "names">> {
  const out = {
    links: [] as string[],
    chains: [] as string[],
    subnets: [] as string[],
    names: [] as string[],
  };
  let journal: Journal;
  try {
    journal = await Journal.open(host, journalPath(labDir), lab, false);
  } catch {
    return out;
  }
  // Read by field, whatever the kind: the net tasks' params (bridge, chain, chains, subnet,
  // address) and the containers' (ip).
  const text = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);
  const cidr = (v: unknown) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text(v) ?? "");
    if (!m) return undefined;
    return m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32 ? m[0] : undefined;
  };
  for (const e of journal.entries()) {
    const p = (e.params && typeof e.params === "object" ? e.params : {}) as Record<string, unknown>;
    const bridge = text(p.bridge);
    if (bridge) out.links.push(bridge);
    const chains = [p.chain, ...(Array.isArray(p.chains) ? p.chains : [])].map(text);
    out.chains.push(...chains.filter((c): c is string => c !== undefined));
    for (const s of [cidr(p.subnet), cidr(p.address), cidr(`${text(p.ip)}/32`)]) if (s) out.subnets.push(s);
    const name = entryScope(e);
    if (name) out.names.push(name);
  }
  return out;
}

/** The starter config's text: what init picked, and the defaults spelled out as comments. */
export function renderStarter(s: Starter, schemaFile?: string): string {
  const net = parseCidr(s.address);
  // Editors with yaml-language-server complete and check keys against the config's JSON Schema.
  const header = schemaFile ? `# yaml-language-server: $schema=${schemaFile}\n` : "";
  return `${header}# aplspawn lab ${s.lab}, written by \`aplspawn init\`: its names and subnet collide with no other
# lab on this host and no route. Every key is optional; docs/configuration.md.
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
