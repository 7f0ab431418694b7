// Labs that `aplspawn test` runs side by side (--all: scenarios/*/aplspawn.yaml; or several -c):
// each its own lab, and what a scenario does not pin (its lab name, bridge, chain, subnet,
// container prefix, inventory file) picked as `init` picks them, free of other labs and of each
// other. A scenario's own earlier runs do not count as taken: it keeps its names from run to run.
import { basename, dirname, join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { labDir } from "../config/paths.js";
import { UsageError } from "../src/errors.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliContext, GlobalOptions } from "./context.js";

type Doc = Record<string, Record<string, unknown> | undefined> & { lab?: string };

/** The configs, loaded and placed apart (files: the -c files; undefined: scenarios/*\/aplspawn.yaml). */
export async function scenarioConfigs(
  cli: CliContext,
  g: GlobalOptions,
  files: string[] | undefined,
): Promise<LoadedConfig[]> {
  const { host } = cli.io;
  const list =
    files ??
    (await host.fs.readdir(resolve("scenarios")).catch(() => [] as string[]))
      .sort()
      .map((d) => resolve("scenarios", d, "aplspawn.yaml"));
  const found: string[] = [];
  for (const f of list) if ((await host.fs.stat(resolve(f)))?.isFile) found.push(resolve(f));
  if (found.length === 0)
    throw new UsageError(
      `no scenario: ${files ? "the -c files do not exist" : "no scenarios/*/aplspawn.yaml here"}`,
    );
  const [{ pickStarter, takenOnHost, recordedNames }, { parseConfig }] = await Promise.all([
    import("../src/lab/starter.js"),
    import("../config/load.js"),
  ]);
  const loaded = await Promise.all(found.map((f) => cli.loadFile({ ...g, config: f }, { interfaces: true })));
  const docs = await Promise.all(found.map(async (f) => (parse(await host.fs.readFile(f)) ?? {}) as Doc));
  // A scenario without a lab name is named by its directory (scenarios/NAME/aplspawn.yaml).
  const names = loaded.map((l, i) => (docs[i]?.lab === undefined ? basename(dirname(l.file)) : l.config.lab));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UsageError(`two scenarios are lab ${twice}: each needs its own lab name`);
  const signal = new AbortController().signal;
  const first = loaded[0]?.config;
  if (!first) throw new UsageError("no scenario");
  const taken = await takenOnHost({ host, signal }, first.workdir);
  // Its own records (an earlier run of the scenario) are not another lab's.
  for (const [i, l] of loaded.entries()) {
    const own = await recordedNames(
      host,
      labDir({ ...l.config, lab: names[i] ?? l.config.lab }),
      names[i] ?? "",
    );
    taken.links = taken.links.filter((x) => !own.links.includes(x));
    taken.chains = taken.chains.filter((x) => !own.chains.includes(x));
    taken.subnets = taken.subnets.filter((x) => !own.subnets.includes(x));
    taken.names = taken.names.filter((x) => !own.names.includes(x));
  }
  // Pinned names are taken first, so the picked ones avoid them.
  for (const d of docs) {
    const n = d.network ?? {};
    if (typeof n.bridge === "string") taken.links.push(n.bridge);
    if (typeof n.chain === "string") taken.chains.push(n.chain);
    if (typeof n.address === "string") taken.subnets.push(n.address);
    if (typeof d.containers?.prefix === "string") taken.names.push(d.containers.prefix);
  }
  return loaded.map((l, i) => {
    const d = docs[i] as Doc;
    const lab = names[i] as string;
    let s: ReturnType<typeof pickStarter>;
    try {
      s = pickStarter({ ...taken, labs: [] }, lab);
    } catch (e) {
      throw new UsageError(`${l.file}: ${(e as Error).message}`);
    }
    const network = { ...d.network };
    if (network.bridge === undefined) {
      network.bridge = s.bridge;
      taken.links.push(s.bridge);
    }
    if (network.chain === undefined) {
      network.chain = s.chain;
      taken.chains.push(s.chain);
    }
    if (network.address === undefined && d.containers?.ipRange === undefined) {
      network.address = s.address;
      taken.subnets.push(s.address);
    }
    const containers = { ...d.containers };
    if (containers.prefix === undefined && containers.sets === undefined) {
      containers.prefix = s.prefix;
      taken.names.push(s.prefix);
    }
    // Each its own inventory: beside its config unless it names one.
    const inventory = { ...d.inventory };
    if (inventory.file === undefined) inventory.file = join(dirname(l.file), "inventory.txt");
    const placed = { ...d, lab, network, containers, inventory };
    return { ...l, config: parseConfig(stringify(placed), l.file) };
  });
}
