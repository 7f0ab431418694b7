// Which labs this host has, up or down. A lab's state is wherever its config's workdir says, so
// each run that may change a lab (not a dry run) records it in an index of root's: where its state
// is, the config it came from (the file, and the config as it was read, so that `run down --lab
// NAME` undoes a lab whose file is gone), and its owner. `aplspawn labs` reads the index with the
// labs' journals and claims; an entry whose lab directory is gone is dropped when it is read.
import { createHash } from "node:crypto";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { labDir } from "../../config/paths.js";
import { type Config, completeConfig, configSchema } from "../../config/schema.js";
import type { Host } from "../host/host.js";
import { notPrivate } from "../host/trusted-path.js";
import { journalPath } from "../runner/journal-path.js";

/** The index: one file per lab directory, root's alone. */
export const INDEX_DIR = "/var/lib/aplspawn/labs";

const recordSchema = z.object({
  lab: z.string(),
  labDir: z.string(),
  /** The config file the lab was last run from (absolute). */
  file: z.string(),
  /** The config as that run read it (relative paths made absolute). */
  config: z.unknown(),
  /** The user who has their own copies of the lab's key and inventory (the last run's that named one). */
  owner: z.string().optional(),
  /** When it was last recorded (ISO 8601). */
  updated: z.string(),
});

/** A lab as the index knows it. */
export type LabRecord = z.infer<typeof recordSchema>;

const entryOf = (dir: string) =>
  join(INDEX_DIR, `${createHash("sha256").update(dir).digest("hex").slice(0, 16)}.json`);

// Paths a config gives relative to the directory aplspawn ran in: absolute in the record, so the
// record means the same from anywhere.
function absolute(c: Config, cwd: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  return {
    ...c,
    containers: {
      ...c.containers,
      ...(c.containers.sshKey !== undefined ? { sshKey: abs(c.containers.sshKey) } : {}),
    },
    inventory: { ...c.inventory, file: abs(c.inventory.file) },
    ...(c.provision ? { provision: { ...c.provision, playbook: abs(c.provision.playbook) } } : {}),
  };
}

/** Record (or refresh) the lab of this config in the index; the owner a record had is kept. */
export async function recordLab(
  host: Host,
  c: Config,
  file: string,
  o: { owner?: string; cwd: string },
): Promise<void> {
  const open = await notPrivate(host, INDEX_DIR);
  if (open) throw new Error(`${INDEX_DIR}: ${open}; aplspawn keeps which labs this host has there`);
  await host.fs.mkdir(INDEX_DIR, 0o700);
  const dir = labDir(c);
  const before = await readRecord(host, entryOf(dir));
  const owner = o.owner ?? before?.owner;
  const rec: LabRecord = {
    lab: c.lab,
    labDir: dir,
    file,
    config: absolute(c, o.cwd),
    ...(owner ? { owner } : {}),
    updated: new Date(host.now()).toISOString(),
  };
  await host.fs.writeFile(entryOf(dir), `${JSON.stringify(rec, null, 2)}\n`, 0o600);
}

async function readRecord(host: Host, file: string): Promise<LabRecord | undefined> {
  try {
    const r = recordSchema.safeParse(JSON.parse(await host.fs.readFile(file)));
    return r.success && entryOf(r.data.labDir) === file ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** The config a record holds, checked again by the schema; undefined when it no longer parses. */
export function recordedConfig(r: LabRecord): Config | undefined {
  const p = configSchema.safeParse(r.config);
  return p.success ? completeConfig(p.data) : undefined;
}

/**
 * Every lab the index knows whose lab directory still holds a journal, by lab directory; entries of
 * labs whose directory is gone are removed.
 */
export async function recordedLabs(host: Host): Promise<LabRecord[]> {
  const out: LabRecord[] = [];
  if (await notPrivate(host, INDEX_DIR)) return out;
  for (const n of (await host.fs.readdir(INDEX_DIR).catch(() => [] as string[])).sort()) {
    if (!n.endsWith(".json")) continue;
    const file = join(INDEX_DIR, n);
    const r = await readRecord(host, file);
    if (r && (await host.fs.exists(journalPath(r.labDir)))) out.push(r);
    else if (!r || !(await host.fs.exists(r.labDir))) await host.fs.rm(file);
  }
  return out;
}

/** Where a lab whose config is gone is found by its name: the index's labs of that name. */
export async function labsNamed(host: Host, name: string): Promise<LabRecord[]> {
  return (await recordedLabs(host)).filter((r) => r.lab === name);
}
