// `aplspawn run WORKFLOW`: one of workflows/index.ts, with the options it takes. What the workflow
// needs checked before anything changes, and what follows it, its entry says: this file compares
// no workflow names.
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { labDir } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { ExitError, UsageError } from "../../src/errors.js";
import { journalPath } from "../../src/runner/journal-path.js";
import { listTaskIds } from "../../src/runner/task.js";
import { type WorkflowEntry, workflows } from "../../workflows/index.js";
import type { WorkflowOptions } from "../../workflows/types.js";
import type { LoadedConfig } from "../config-file.js";
import {
  type CliContext,
  type CliIo,
  type CommandAdder,
  type GlobalOptions,
  globals,
  jsonLine,
  withExamples,
} from "../context.js";
import { type LabAccounts, labAccounts, mayUse } from "../lab-access.js";

/** The options of `run`, as commander gives them. */
interface RunOptions {
  dryRun?: boolean;
  detailedExitcode?: boolean;
  /** --no-rollback sets this false. */
  rollback?: boolean;
  listTasks?: boolean;
  concurrency?: number;
  only?: string;
  purge?: boolean;
  owner?: string;
  ansibleUser?: string;
  lab?: string;
  keepGoing?: boolean;
}

/** `aplspawn run`: the workflow, its options checked against its entry, and what follows it. */
export const runCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("run"), [
    "sudo aplspawn run up",
    "sudo aplspawn run stop --only web1,web2",
    "sudo aplspawn run down --purge",
    "sudo aplspawn run down --lab mylab",
  ])
    .description(`run a workflow: ${Object.keys(workflows).join(", ")}`)
    .argument("<workflow>", "workflow name")
    .option("--dry-run", "only check; print what would change and the commands")
    .option("--detailed-exitcode", "with --dry-run: exit 3 when something would change, 0 when nothing would")
    .option("--no-rollback", "on failure, keep what was created (run again to resume)")
    .option("--list-tasks", "print the task ids the workflow would run, one per line")
    .option("--concurrency <n>", "containers started at once (overrides containers.concurrency)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1)
        throw new UsageError(`--concurrency must be a positive integer, not "${v}"`);
      return n;
    })
    .option("--only <names>", "limit per-container work to these containers (comma-separated)")
    .option("--purge", "down: also delete upper layers, keys, kept logs and the downloaded and pulled images")
    .option(
      "--owner <user>",
      "up: the user who gets their own copy of the lab key, known_hosts and inventory (default: SUDO_USER)",
    )
    .option(
      "--ansible-user <user>",
      "up, provision, reset of a lab without owner: the unprivileged account Ansible runs as (default: aplspawn)",
    )
    .option(
      "--keep-going",
      "up of a lab across hosts: a host that fails is taken down alone and named, the others stay up (exit 1)",
    )
    .option(
      "--lab <name>",
      "down: the lab of this name on this host, by what its last run recorded (its config may be gone)",
    )
    .action((name: string, o: RunOptions, cmd: Command) => run(cli, name, o, globals(cmd)));

async function run(cli: CliContext, name: string, o: RunOptions, g: GlobalOptions): Promise<void> {
  const { io } = cli;
  const wf = workflows[name];
  if (!wf)
    throw new UsageError(`Unknown workflow "${name}"; workflows: ${Object.keys(workflows).join(", ")}`);
  refuseOthers(name, wf, o);
  // What the workflow makes is checked before anything changes: a bridge name that is another
  // interface's is a usage error (exit 2).
  const loaded =
    o.lab !== undefined
      ? await recordedLab(io, o.lab, g)
      : await cli.loadFile(g, wf.makesNetwork && !o.listTasks ? { interfaces: true } : {});
  const { config } = loaded;
  if (o.keepGoing && !config.cluster)
    throw new UsageError(
      "--keep-going applies to a lab across hosts (a config with cluster): one host has nothing to go on with",
    );
  const build = await wf.load();
  const who = await labAccounts(
    io,
    { owner: wf.options.includes("owner"), ansibleUser: wf.options.includes("ansibleUser") },
    { owner: o.owner, ansibleUser: o.ansibleUser },
    dirname(resolve(config.inventory.file)),
  );
  await mayUse(io, loaded, who, wf.writesInventory === true);
  if (wf.runsPlaybook && config.provision && !o.listTasks) await requireRunnablePlaybook(cli, loaded, who);
  const workflow = build(config, {
    only: o.only?.split(",").filter(Boolean),
    concurrency: o.concurrency,
    purge: o.purge === true,
    ...(o.keepGoing ? { keepGoing: true } : {}),
    ...who,
  });
  if (o.listTasks) {
    io.out(`${listTaskIds(workflow.steps).join("\n")}\n`);
    return;
  }
  // Which lab this is, before anything is done to it.
  if (!g.json && !g.quiet) io.out(`‣ [ INFO ] ${cli.whichLab(loaded)}\n`);
  if (o.dryRun !== true && o.lab === undefined) await recordRun(io, wf, loaded, who);
  const summary = await cli.run(workflow, config, g, {
    dryRun: o.dryRun === true,
    noRollback: o.rollback === false,
    command: `aplspawn run ${name}`,
  });
  // terraform plan -detailed-exitcode, with 3 (2 is a usage error here): drift for CI to act on.
  if (o.detailedExitcode && summary.wouldChange > 0) throw new ExitError("", 3);
  if (o.dryRun === true) return;
  // After containers came up: the lab, and what to do with it.
  if (wf.followedBy?.includes("labTable") && !g.quiet) await showLab(cli, config, g);
  // --keep-going: the hosts that failed, after the lab that stays up; no playbook on a part of it.
  if (o.keepGoing) await (await import("../cluster-commands.js")).failIfHostsFailed(cli, config);
  // The playbook under test, as a run of its own: its failure leaves the lab up.
  if (wf.followedBy?.includes("provision") && config.provision) {
    const { provision } = await import("../../workflows/provision.js");
    await cli.run(provision(config, who), config, g, { command: "aplspawn run provision" });
  }
}

/** Each workflow takes only its own options: one it would ignore is refused, not dropped. */
function refuseOthers(name: string, wf: WorkflowEntry, o: RunOptions): void {
  if (o.lab !== undefined && !wf.byLabName)
    throw new UsageError(
      `--lab applies to ${takers((w) => w.byLabName === true)}, not to \`run ${name}\`: other workflows read the lab's config (-c)`,
    );
  const given: Record<keyof WorkflowOptions & keyof RunOptions, boolean> = {
    only: o.only !== undefined,
    concurrency: o.concurrency !== undefined,
    purge: o.purge === true,
    owner: o.owner !== undefined,
    ansibleUser: o.ansibleUser !== undefined,
    keepGoing: o.keepGoing === true,
  };
  for (const [opt, set] of Object.entries(given) as [keyof typeof given, boolean][])
    if (set && !wf.options.includes(opt)) {
      const flag = opt.replace(/[A-Z]/g, (l) => `-${l.toLowerCase()}`);
      throw new UsageError(
        `--${flag} applies to ${takers((w) => w.options.includes(opt))}, not to \`run ${name}\``,
      );
    }
  if (o.detailedExitcode && !o.dryRun)
    throw new UsageError("--detailed-exitcode goes with --dry-run (it tells whether anything would change)");
}

/** The workflows an option applies to, as a sentence lists them: "up, spawn and reset". */
function takers(takes: (w: WorkflowEntry) => boolean): string {
  const names = Object.entries(workflows)
    .filter(([, w]) => takes(w))
    .map(([n]) => n);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : (names[0] ?? "");
}

/**
 * The playbook a run runs must exist and parse before anything changes, checked as the one who
 * will run it (never root): else exit 2, as validate says it.
 */
async function requireRunnablePlaybook(
  cli: CliContext,
  loaded: LoadedConfig,
  who: LabAccounts,
): Promise<void> {
  const as = who.owner ?? who.ansibleUser;
  const { configProblem, requirePlaybook } = await import("../config-file.js");
  if (!as)
    throw await configProblem(cli.io.host, loaded.file, {
      at: ["provision", "playbook"],
      message:
        "Ansible runs as the lab's owner (sudo from your account, or --owner) or as an unprivileged account (--ansible-user, or aplspawn, which scripts/install.sh makes); neither is here, and Ansible never runs as root against a lab",
    });
  await requirePlaybook(cli.io.host, loaded.file, loaded.config, as);
}

/**
 * The index of this host's labs (`aplspawn labs`, `run down --lab`), as root. Not for undoing a
 * lab that was never run: there is nothing of it to list.
 */
async function recordRun(
  io: CliIo,
  wf: WorkflowEntry,
  loaded: LoadedConfig,
  who: LabAccounts,
): Promise<void> {
  const { config } = loaded;
  if (io.host.uid() !== 0) return;
  if (wf.undoes === true && !(await io.host.fs.exists(journalPath(labDir(config))))) return;
  const { recordLab } = await import("../../src/lab/registry.js");
  await recordLab(io.host, config, loaded.file, {
    ...(who.owner ? { owner: who.owner.name } : {}),
    cwd: process.cwd(),
  });
}

/** The lab table: each container, its address and state, and what to do with the lab. */
async function showLab(cli: CliContext, config: Config, g: GlobalOptions): Promise<void> {
  if (config.cluster) return (await import("../cluster-commands.js")).clusterLabTable(cli, config, g);
  const [{ containerStates }, { labRows, renderLabTable }, { labLook }] = await Promise.all([
    import("../../src/lab/state.js"),
    import("../lab-table.js"),
    import("../../workflows/lab-params.js"),
  ]);
  const rows = labRows(config, await containerStates(cli.io.host, labLook(config)));
  cli.io.out(
    g.json
      ? `${jsonLine(config.lab, { event: "lab", containers: rows })}\n`
      : renderLabTable(config, rows, g.config),
  );
}

/** The lab of this name, as its last run recorded it (`run down --lab NAME`: its config may be gone). */
async function recordedLab(io: CliIo, name: string, g: GlobalOptions): Promise<LoadedConfig> {
  if (g.config !== undefined) throw new UsageError("--lab and -c name a lab each: give one of them");
  if (io.host.uid() !== 0) throw new ExitError("--lab reads root's index of labs: run it with sudo");
  const { labsNamed, recordedConfig } = await import("../../src/lab/registry.js");
  const found = await labsNamed(io.host, name);
  if (found.length === 0)
    throw new UsageError(`no lab named ${name} on this host (\`sudo aplspawn labs\` lists them)`);
  if (found.length > 1)
    throw new UsageError(
      `${found.length} labs are named ${name}: ${found.map((r) => `${r.labDir} (config ${r.file})`).join(", ")}; name one with -c FILE`,
    );
  const r = found[0] as (typeof found)[number];
  const config = recordedConfig(r);
  if (!config)
    throw new ExitError(
      `the config recorded for lab ${name} (${r.labDir}) no longer reads as a config of this version`,
    );
  const gone = !(await io.host.fs.exists(r.file));
  return {
    config,
    file: `${r.file}${gone ? " (gone: as its last run read it)" : " (as its last run read it)"}`,
    packaged: false,
  };
}
