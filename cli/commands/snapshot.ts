// `aplspawn snapshot save|list|restore|delete`: containers' state kept and brought back
// (workflows/snapshot.ts). What can be refused is refused here, before anything is stopped: an
// unknown or taken name, a container the snapshot does not hold, a snapshot of another image or set.
import type { Command } from "commander";
import { type ContainerSpec, containerSpecs, specsNamed } from "../../config/containers.js";
import { imageFileOf } from "../../config/images.js";
import { diskPaths, labDir, snapshotsDir } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { ExitError, UsageError } from "../../src/errors.js";
import type { Host } from "../../src/host/host.js";
import { formatBytes } from "../../src/image/progress.js";
import {
  imageIdOrGone,
  layersMisfit,
  listSnapshots,
  type SnapshotInfo,
  snapshotName,
} from "../../src/lab/snapshots.js";
import type { WorkflowBuilder } from "../../workflows/types.js";
import { type CliContext, type CommandAdder, type GlobalOptions, globals, withExamples } from "../context.js";

const onlyOf = (o: { only?: string }) => o.only?.split(",").filter(Boolean);

/** The config, as root (the lab's directory is root's alone), and its snapshots. */
async function lab(cli: CliContext, g: GlobalOptions): Promise<{ c: Config; snapshots: SnapshotInfo[] }> {
  const loaded = await cli.loadFile(g);
  const c = loaded.config;
  if (cli.io.host.uid() !== 0)
    throw new ExitError(
      `snapshots must be handled as root: the lab's directory ${labDir(c)} is root's alone`,
    );
  if (!g.json && !g.quiet) cli.io.out(`‣ [ INFO ] ${cli.whichLab(loaded)}\n`);
  return { c, snapshots: await listSnapshots(cli.io.host, snapshotsDir(c)) };
}

/** Why a snapshot cannot be restored onto these containers of the lab (undefined: it can). */
export async function snapshotMisfit(
  host: Host,
  c: Config,
  snap: SnapshotInfo,
  specs: readonly ContainerSpec[],
): Promise<string | undefined> {
  const held = new Map(snap.containers.map((m) => [m.container, m]));
  for (const s of specs) {
    const m = held.get(s.name);
    if (!m)
      return `snapshot ${snap.name} holds no container ${s.name}; it holds ${[...held.keys()].join(", ")}`;
    const misfit = layersMisfit(m, { set: s.set, image: await imageIdOrGone(host, imageFileOf(c, s.set)) });
    if (misfit) return misfit;
  }
  return undefined;
}

/** The snapshot of that name, or a usage error listing those there are. */
function find(snapshots: SnapshotInfo[], name: string): SnapshotInfo {
  const s = snapshots.find((x) => x.name === name);
  if (!s)
    throw new UsageError(
      `no snapshot named ${name} in this lab; ${snapshots.length ? `snapshots: ${snapshots.map((x) => x.name).join(", ")}` : "it has none"}`,
    );
  return s;
}

/** The container names --only selects (containers or sets), or a usage error. */
function namesOf(c: Config, only: string[]): string[] {
  const { specs, unknown } = specsNamed(c, only);
  if (unknown.length)
    throw new UsageError(`--only: no container or set named ${unknown.join(", ")} in this lab`);
  return specs.map((s) => s.name);
}

async function runIt(
  cli: CliContext,
  g: GlobalOptions,
  c: Config,
  build: (m: typeof import("../../workflows/snapshot.js")) => WorkflowBuilder,
  o: { snapshot: string; only?: string[] },
  command: string,
): Promise<void> {
  const workflow = build(await import("../../workflows/snapshot.js"))(c, o);
  await cli.run(workflow, c, g, { command });
}

const save = (cli: CliContext) => async (name: string, o: { only?: string }, cmd: Command) => {
  const g = globals(cmd);
  snapshotName(name);
  const { c, snapshots } = await lab(cli, g);
  if (snapshots.some((s) => s.name === name) || (await cli.io.host.fs.exists(`${snapshotsDir(c)}/${name}`)))
    throw new UsageError(`a snapshot named ${name} exists: \`aplspawn snapshot delete ${name}\` first`);
  const only = onlyOf(o);
  for (const n of only ? namesOf(c, only) : containerSpecs(c).map((s) => s.name)) {
    // Its upper layer is on its own file system, in sight only while that is mounted (the lab is up).
    const d = diskPaths(c, n);
    if ((await cli.io.host.fs.stat(d.upper))?.isDirectory) continue;
    throw new UsageError(
      (await cli.io.host.fs.exists(d.file))
        ? `container ${n} is not up (its file system is not mounted): \`aplspawn run up\` first`
        : `container ${n} has no state to save (it was never up): \`aplspawn run up\` first`,
    );
  }
  await runIt(
    cli,
    g,
    c,
    (m) => m.snapshotSaveWorkflow,
    { snapshot: name, ...(only ? { only } : {}) },
    "aplspawn snapshot save",
  );
};

const restore = (cli: CliContext) => async (name: string, o: { only?: string }, cmd: Command) => {
  const g = globals(cmd);
  snapshotName(name);
  const { c, snapshots } = await lab(cli, g);
  const snap = find(snapshots, name);
  const only = onlyOf(o);
  const names = only ? namesOf(c, only) : snap.containers.map((m) => m.container);
  const specs = specsNamed(c, names);
  if (specs.unknown.length)
    throw new UsageError(`snapshot ${name} holds ${specs.unknown.join(", ")}, which this lab has no longer`);
  // Refused before anything is stopped: a refused restore leaves the containers as they were.
  const misfit = await snapshotMisfit(cli.io.host, c, snap, specs.specs);
  if (misfit) throw new UsageError(misfit);
  await runIt(
    cli,
    g,
    c,
    (m) => m.snapshotRestoreWorkflow,
    { snapshot: name, only: names },
    "aplspawn snapshot restore",
  );
};

const remove = (cli: CliContext) => async (name: string, _o: unknown, cmd: Command) => {
  const g = globals(cmd);
  snapshotName(name);
  const { c, snapshots } = await lab(cli, g);
  find(snapshots, name);
  await runIt(cli, g, c, (m) => m.snapshotDeleteWorkflow, { snapshot: name }, "aplspawn snapshot delete");
};

const list = (cli: CliContext) => async (_o: unknown, cmd: Command) => {
  const g = globals(cmd);
  const { snapshots } = await lab(cli, g);
  if (g.json) {
    cli.io.out(
      `${JSON.stringify(snapshots.map((s) => ({ name: s.name, containers: s.containers.map((m) => m.container), bytes: s.bytes, time: s.time })))}\n`,
    );
    return;
  }
  const rows = [
    ["NAME", "CONTAINERS", "SIZE", "TIME"],
    ...snapshots.map((s) => [
      s.name,
      s.containers.map((m) => m.container).join(","),
      formatBytes(s.bytes),
      s.time,
    ]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  cli.io.out(
    `${rows
      .map((r) =>
        r
          .map((v, i) => v.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd(),
      )
      .join("\n")}\n`,
  );
};

/** The snapshot command and its subcommands. */
export const snapshotCommand: CommandAdder = (program, cli) => {
  const cmd = withExamples(program.command("snapshot"), [
    "sudo aplspawn snapshot save base",
    "sudo aplspawn snapshot restore base --only web1",
  ]).description("keep containers' state and bring it back: save, list, restore, delete");
  const only = "these containers or sets (comma-separated; default: all of the lab's, or of the snapshot's)";
  cmd
    .command("save")
    .description("stop the containers, keep their state as snapshot NAME, start them again")
    .argument("<snapshot>", "snapshot name")
    .option("--only <names>", only)
    .action(save(cli));
  cmd.command("list").description("the lab's snapshots: name, containers, size, time").action(list(cli));
  cmd
    .command("restore")
    .description("bring the containers back to snapshot NAME (their changes since are lost)")
    .argument("<snapshot>", "snapshot name")
    .option("--only <names>", only)
    .action(restore(cli));
  cmd
    .command("delete")
    .description("delete snapshot NAME")
    .argument("<snapshot>", "snapshot name")
    .action(remove(cli));
};
