#!/usr/bin/env node
// The CLI entry: parses argv (given as a parameter, so tests call it directly), dispatches, and
// maps every error to an exit code in exactly one place.
import { readFileSync, realpathSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { labDir } from "../config/paths.js";
import {
  ExitError,
  errorMessage,
  InterruptedError,
  JournalError,
  LockedError,
  TaskFailedError,
  UsageError,
} from "../src/errors.js";
import { CommandError, RootFsError, shellQuote } from "../src/host/host.js";
import { realHost } from "../src/host/real-host.js";
import { journalPath } from "../src/runner/journal-path.js";
import { printable, type RunEvent, renderEvent, shownWhenQuiet } from "../src/runner/report.js";
import { listTaskIds } from "../src/runner/task.js";
import { workflows } from "../workflows/index.js";
import { extraCommands } from "./commands.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliContext, CliIo, GlobalOptions } from "./context.js";
import { ansibleAccount, mayUse, ownerOf } from "./lab-access.js";
import { processSignals, runInterrupts, tolerateClosedOutput } from "./signals.js";

/** Where the package lives (for the default config and the version). */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

// The original tool's `-o OPERATION`: report commands keep their names, the rest are workflows.
const REPORTS = new Set(["status", "pids", "names", "inventory"]);
function rewriteLegacy(argv: string[]): string[] {
  // The words completion is asked about are not this command's.
  if (argv[0] === "__complete") return argv;
  const i = argv.findIndex((a) => a === "-o" || a === "--operation");
  if (i < 0) return argv;
  const op = argv[i + 1];
  if (!op) throw new UsageError("-o needs an operation, e.g. -o netup");
  const rest = [...argv.slice(0, i), ...argv.slice(i + 2)];
  return REPORTS.has(op) ? [op, ...rest] : ["run", op, ...rest];
}

// What `aplspawn CMD --help` ends with: a command line that works as it is.
const EXAMPLES: Record<string, string[]> = {
  run: [
    "sudo aplspawn run up",
    "sudo aplspawn run stop --only web1,web2",
    "sudo aplspawn run down --purge",
    "sudo aplspawn run down --lab mylab",
  ],
  test: [
    "sudo aplspawn test --junit report.xml",
    "sudo aplspawn test --all --junit report.xml",
    "sudo aplspawn test -c a.yaml -c b.yaml --keep-on-failure",
    "sudo aplspawn test --reuse-prepare   # the next run starts from the state prepare left",
  ],
  labs: ["sudo aplspawn labs", "sudo aplspawn labs --json"],
  validate: ["aplspawn validate lab.yaml", "aplspawn --json validate"],
  init: ["aplspawn -c lab.yaml init --lab mylab"],
  schema: ["aplspawn schema > aplspawn.schema.json"],
  status: ["sudo aplspawn status", "aplspawn status --json"],
  pids: ["sudo aplspawn pids"],
  names: ["aplspawn names", "aplspawn names web db"],
  inventory: ["aplspawn inventory --format yaml --output hosts.yml", "aplspawn inventory --format json"],
  ssh: ["aplspawn ssh web1", "aplspawn ssh root@web1 -- systemctl is-system-running"],
  exec: ["sudo aplspawn exec web1 -- journalctl -b --no-pager"],
  logs: ["sudo aplspawn logs web1 -f", "sudo aplspawn logs web1 -n all"],
  image: ["sudo aplspawn image build", "aplspawn image inspect"],
  build: ["sudo aplspawn image build --set db --force"],
  inspect: ["aplspawn image inspect /var/lib/aplspawn/images/debian-bookworm.img"],
  snapshot: ["sudo aplspawn snapshot save base", "sudo aplspawn snapshot restore base --only web1"],
  completion: ['eval "$(aplspawn completion bash)"', "aplspawn completion fish | source"],
};

/** Every command's help ends with its examples (commands without one get none). */
function addExamples(cmd: Command): void {
  for (const c of cmd.commands) {
    const ex = EXAMPLES[c.name()];
    if (ex) c.addHelpText("after", `\nExamples:\n${ex.map((e) => `  ${e}`).join("\n")}\n`);
    addExamples(c);
  }
}

/** A --json line of a run: the event, with when (ISO 8601, UTC) and which lab. */
const jsonLine = (lab: string, e: object) => JSON.stringify({ ts: new Date().toISOString(), lab, ...e });

function version(): string {
  return (JSON.parse(readFileSync(resolve(packageDir, "package.json"), "utf8")) as { version: string })
    .version;
}

// zod and yaml cost ~150 ms to load: only commands that read the config pay for them.
const loadConfig: typeof import("./config-file.js").loadConfig = async (...a) =>
  (await import("./config-file.js")).loadConfig(...a);

/** Run the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = new Command("aplspawn");
  const cli: CliContext = {
    io,
    load: async (g) => (await cli.loadFile(g)).config,
    loadFile: async (g, checks) => {
      const l = await loadConfig(
        io.host,
        g.config ?? (io.env.APLSPAWN_CONFIG || undefined),
        packageDir,
        checks,
      );
      // A config is root's code: as root, one that someone else could have written is refused.
      if (io.host.uid() === 0 && !l.packaged) {
        const { configFileProblem } = await import("../src/lab/config-trust.js");
        const sudoUid = io.env.SUDO_UID ? Number(io.env.SUDO_UID) : undefined;
        const problem = await configFileProblem(io.host, l.file, sudoUid || undefined);
        if (problem)
          throw new UsageError(
            `${problem}: aplspawn runs a config as root, so only root (or the user running it through sudo) may be able to change it`,
          );
      }
      return l;
    },
    whichLab: (l) =>
      `lab ${l.config.lab}, config ${l.file}${l.packaged ? " (the packaged default: no -c, no APLSPAWN_CONFIG, no ./aplspawn.yaml)" : ""}`,
    // -q: plain lines (no live tree), and only what shownWhenQuiet keeps.
    upCommand: (l) => `sudo aplspawn${l.packaged ? "" : ` -c ${shellQuote(l.file)}`} run up`,
    mode: (g) => (g.json ? "json" : io.isTTY && !g.quiet ? "tty" : "plain"),
    async run(workflow, config, g, o) {
      const mode = o.mode ?? cli.mode(g);
      const { runWorkflow } = await import("../src/runner/runner.js");
      const { taskRegistry } = await import("../tasks/index.js");
      const { labUndoScope } = await import("../src/lab/undo-scope.js");
      const emit = (e: RunEvent) => {
        o.onEvent?.(e);
        if (g.quiet && mode !== "json" && !shownWhenQuiet(e)) return;
        const line = mode === "json" ? jsonLine(config.lab, e) : renderEvent(mode, e);
        if (line !== undefined) io.out(`${o.prefix ? line.replace(/^/gm, o.prefix) : line}\n`);
      };
      const interrupt = runInterrupts(io.signals, emit, io.exit);
      try {
        return await runWorkflow(workflow, {
          host: io.host,
          lab: config.lab,
          labDir: labDir(config),
          registry: taskRegistry(),
          mode,
          emit,
          dryRun: o.dryRun === true,
          noRollback: o.noRollback === true,
          ...(g.verbose ? { verbose: true } : {}),
          failAfter: io.env.APLSPAWN_FAIL_AFTER || undefined,
          command: o.command,
          interrupt: interrupt.signal,
          undoScope: labUndoScope(config),
        });
      } finally {
        interrupt.off();
      }
    },
  };
  program
    .description("A lab of systemd-nspawn containers on one host, for testing Ansible playbooks over SSH")
    .version(version(), "-V, --version")
    .option(
      "-c, --config <file>",
      "config file (default $APLSPAWN_CONFIG, else ./aplspawn.yaml, else the packaged config/aplspawn.yaml)",
    )
    .option("--json", "print one JSON object per line")
    .option(
      "-v, --verbose",
      "print full command errors, and what long tools (debootstrap) print off a terminal",
    )
    .option("-q, --quiet", "print only warnings, failures and each run's summary")
    .option("--no-color", "no colors on a terminal (as NO_COLOR=1 does)")
    .addOption(
      new Option(
        "-o, --operation <op>",
        "the original tool's form: -o netup is `run netup`, -o status is `status`",
      ),
    )
    .exitOverride()
    // `aplspawn status --help` shows -c, --json and -v too: they apply to every command.
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError(false);

  program
    .command("run")
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
      "--lab <name>",
      "down: the lab of this name on this host, by what its last run recorded (its config may be gone)",
    )
    .action(async (name: string, o: Record<string, unknown>, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions;
      const wf = workflows[name];
      if (!wf)
        throw new UsageError(`Unknown workflow "${name}"; workflows: ${Object.keys(workflows).join(", ")}`);
      // Each workflow takes only its own options: one it would ignore is refused, not dropped.
      const given = {
        only: o.only !== undefined,
        concurrency: o.concurrency !== undefined,
        purge: o.purge === true,
        owner: o.owner !== undefined,
        ansibleUser: o.ansibleUser !== undefined,
      };
      if (o.lab !== undefined && name !== "down")
        throw new UsageError(
          `--lab applies to down, not to \`run ${name}\`: other workflows read the lab's config (-c)`,
        );
      for (const [opt, set] of Object.entries(given))
        if (set && !wf.options.includes(opt as keyof typeof given)) {
          const takers = Object.entries(workflows)
            .filter(([, w]) => w.options.includes(opt as keyof typeof given))
            .map(([n]) => n);
          const list =
            takers.length > 1 ? `${takers.slice(0, -1).join(", ")} and ${takers.at(-1)}` : takers[0];
          const flag = opt.replace(/[A-Z]/g, (l) => `-${l.toLowerCase()}`);
          throw new UsageError(`--${flag} applies to ${list}, not to \`run ${name}\``);
        }
      if (o.detailedExitcode && !o.dryRun)
        throw new UsageError(
          "--detailed-exitcode goes with --dry-run (it tells whether anything would change)",
        );
      // What up and netup make is checked before anything changes: a bridge name that is another
      // interface's is a usage error (exit 2).
      const makesNet = name === "up" || name === "netup";
      const loaded =
        typeof o.lab === "string"
          ? await recordedLab(io, o.lab, g)
          : await cli.loadFile(g, makesNet && !o.listTasks ? { interfaces: true } : {});
      const { config } = loaded;
      const only = typeof o.only === "string" ? o.only.split(",").filter(Boolean) : undefined;
      const build = await wf.load();
      const owner = wf.options.includes("owner")
        ? await ownerOf(io, o.owner as string | undefined, dirname(resolve(config.inventory.file)))
        : undefined;
      if (owner && o.ansibleUser !== undefined)
        throw new UsageError(
          `--ansible-user is for a lab without owner; this one has ${owner.name}, and Ansible runs as them`,
        );
      const ansibleUser =
        wf.options.includes("ansibleUser") && !owner
          ? await ansibleAccount(io, o.ansibleUser as string | undefined)
          : undefined;
      await mayUse(io, loaded, name, {
        ...(owner ? { owner } : {}),
        ...(ansibleUser ? { ansible: ansibleUser } : {}),
      });
      // The playbook up runs at its end (and provision runs) must exist and parse before anything
      // changes, checked as the one who will run it (never root): else exit 2, as validate says it.
      if ((name === "up" || name === "provision") && config.provision && !o.listTasks) {
        const as = owner ?? ansibleUser;
        const { configProblem, requirePlaybook } = await import("./config-file.js");
        if (!as)
          throw await configProblem(io.host, loaded.file, {
            at: ["provision", "playbook"],
            message:
              "Ansible runs as the lab's owner (sudo from your account, or --owner) or as an unprivileged account (--ansible-user, or aplspawn, which scripts/install.sh makes); neither is here, and Ansible never runs as root against a lab",
          });
        await requirePlaybook(io.host, loaded.file, config, as);
      }
      const workflow = build(config, {
        only,
        concurrency: o.concurrency as number | undefined,
        purge: o.purge === true,
        ...(owner ? { owner } : {}),
        ...(ansibleUser ? { ansibleUser } : {}),
      });
      if (o.listTasks) {
        io.out(`${listTaskIds(workflow.steps).join("\n")}\n`);
        return;
      }
      // Which lab this is, before anything is done to it.
      if (!g.json && !g.quiet) io.out(`‣ [ INFO ] ${cli.whichLab(loaded)}\n`);
      // The index of this host's labs (`aplspawn labs`, `run down --lab`): not for a preview.
      // Nor for undoing a lab that was never run: there is nothing of it to list.
      const nothingToUndo = wf.undoes === true && !(await io.host.fs.exists(journalPath(labDir(config))));
      if (o.dryRun !== true && o.lab === undefined && io.host.uid() === 0 && !nothingToUndo) {
        const { recordLab } = await import("../src/lab/registry.js");
        await recordLab(io.host, config, loaded.file, {
          ...(owner ? { owner: owner.name } : {}),
          cwd: process.cwd(),
        });
      }
      const summary = await cli.run(workflow, config, g, {
        dryRun: o.dryRun === true,
        noRollback: o.rollback === false,
        command: `aplspawn run ${name}`,
      });
      // terraform plan -detailed-exitcode, with 3 (2 is a usage error here): drift for CI to act on.
      if (o.detailedExitcode && summary.wouldChange > 0) throw new ExitError("", 3);
      // After containers came up: the lab, and what to do with it.
      if ((name === "up" || name === "spawn") && o.dryRun !== true && !g.quiet) {
        const [{ containerStates }, { labRows, renderLabTable }] = await Promise.all([
          import("../src/lab/state.js"),
          import("./lab-table.js"),
        ]);
        const rows = labRows(config, await containerStates(io.host, config));
        io.out(
          g.json
            ? `${jsonLine(config.lab, { event: "lab", containers: rows })}\n`
            : renderLabTable(config, rows, g.config),
        );
      }
      // The playbook under test, as a run of its own: its failure leaves the lab up.
      if (name === "up" && config.provision && o.dryRun !== true) {
        const { provision } = await import("../workflows/provision.js");
        await cli.run(
          provision(config, { ...(owner ? { owner } : {}), ...(ansibleUser ? { ansibleUser } : {}) }),
          config,
          g,
          {
            command: "aplspawn run provision",
          },
        );
      }
    });

  program
    .command("validate")
    .description("check a config file and print every problem")
    .argument("[file]", "config file (default: as for -c)")
    .action(async (file: string | undefined, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions;
      let loaded: Awaited<ReturnType<typeof loadConfig>>;
      // What could not be checked (no ansible-playbook): said, and the config still valid.
      const warnings: string[] = [];
      const warn = (w: string) => {
        warnings.push(w);
        if (!g.json) io.err(`aplspawn: warning: ${w}\n`);
      };
      try {
        loaded = await loadConfig(
          io.host,
          file ?? g.config ?? (io.env.APLSPAWN_CONFIG || undefined),
          packageDir,
          {
            // As `run up` will run it: as the lab's owner when there will be one.
            playbook: {
              owner: async (c) =>
                io.host.uid() === 0
                  ? ((await ownerOf(io, undefined, dirname(resolve(c.inventory.file)), false)) ??
                    (await ansibleAccount(io, undefined)))
                  : undefined,
            },
            interfaces: true,
            // As `run up` will check them again: root's, or the lab's owner's (sudo from their account).
            binds: io.env.SUDO_UID && io.env.SUDO_UID !== "0" ? { owner: Number(io.env.SUDO_UID) } : {},
            warn,
          },
        );
      } catch (e) {
        // --json: the problems as data, each with its key and where it is (exit 2 all the same). A
        // file that cannot be read says so in a sentence of its own, its diagnostic the cause.
        const { ConfigError } = await import("../config/diagnostic.js");
        const bad = e instanceof ConfigError ? e : e instanceof UsageError ? e.cause : undefined;
        if (g.json && bad instanceof ConfigError) {
          const more = warnings.length ? { warnings } : {};
          io.out(`${JSON.stringify({ ok: false, file: bad.file, diagnostics: bad.items, ...more })}\n`);
          throw new ExitError("", 2);
        }
        throw e;
      }
      const { file: used, config: c } = loaded;
      const [{ containerSpecs }, { labImages }, { parseCidr, intToIp }] = await Promise.all([
        import("../config/containers.js"),
        import("../config/images.js"),
        import("../config/ip.js"),
      ]);
      const net = parseCidr(c.network.address);
      const lab = {
        lab: c.lab,
        containers: containerSpecs(c).length,
        sets: (c.containers.sets ?? []).map((s) => ({ name: s.name, count: s.count })),
        subnet: `${intToIp(net.network)}/${net.prefix}`,
        bridge: c.network.bridge,
        images: labImages(c).map((i) => i.path),
      };
      const sets = lab.sets.length ? ` (${lab.sets.map((s) => `${s.name} ×${s.count}`).join(", ")})` : "";
      io.out(
        g.json
          ? `${JSON.stringify({ ok: true, file: used, ...lab, ...(warnings.length ? { warnings } : {}) })}\n`
          : `${used}: valid: lab ${lab.lab}, ${lab.containers} container${lab.containers === 1 ? "" : "s"}${sets}, subnet ${lab.subnet} on bridge ${lab.bridge}, image${lab.images.length === 1 ? "" : "s"} ${lab.images.join(", ")}\n`,
      );
    });

  for (const add of extraCommands) add(program, cli);
  addExamples(program);

  // The terminal renderer's colors follow NO_COLOR, read when it loads (after this).
  program.hook("preAction", (cmd) => {
    if ((cmd.optsWithGlobals() as GlobalOptions).color === false) process.env.NO_COLOR = "1";
  });
  try {
    await program.parseAsync(rewriteLegacy(argv), { from: "user" });
    return 0;
  } catch (e) {
    return reportError(e, io, program.opts<GlobalOptions>());
  }
}

/** The lab of this name, as its last run recorded it (`run down --lab NAME`: its config may be gone). */
async function recordedLab(io: CliIo, name: string, g: GlobalOptions): Promise<LoadedConfig> {
  if (g.config !== undefined) throw new UsageError("--lab and -c name a lab each: give one of them");
  if (io.host.uid() !== 0) throw new ExitError("--lab reads root's index of labs: run it with sudo");
  const { labsNamed, recordedConfig } = await import("../src/lab/registry.js");
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

// The one top-level catch: every error becomes a message and an exit code.
function reportError(e: unknown, io: CliIo, g: GlobalOptions): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help")
      return 0;
    return 2;
  }
  const code =
    typeof (e as { exitCode?: unknown }).exitCode === "number" ? (e as { exitCode: number }).exitCode : 1;
  if (e instanceof InterruptedError) {
    io.err("aplspawn: interrupted\n");
    return 130;
  }
  if (e instanceof TaskFailedError) {
    const cause = e.cause;
    io.err(`aplspawn: task ${e.taskId} failed: ${errorMessage(cause)}\n`);
    if (g.verbose && cause instanceof CommandError) io.err(`${cause.detail}\n`);
    for (const note of e.notes) io.err(`aplspawn: ${note}\n`);
    if (e.rollbackFailures > 0)
      io.err(
        `aplspawn: ${e.rollbackFailures} rollback step(s) failed; they stay in the journal: run \`aplspawn run down\` to retry\n`,
      );
    return 1;
  }
  // The errors a user can act on are ours by class; anything else (a TypeError, a plain Error, an
  // InternalError) is a bug and is printed with its stack.
  const userFacing =
    e instanceof UsageError ||
    e instanceof LockedError ||
    e instanceof JournalError ||
    e instanceof ExitError ||
    e instanceof CommandError ||
    e instanceof RootFsError;
  if (userFacing) {
    // An exit code alone (--detailed-exitcode) has nothing to say.
    if (errorMessage(e)) io.err(`aplspawn: ${errorMessage(e)}\n`);
    if (g.verbose && e instanceof CommandError) io.err(`${e.detail}\n`);
    return code;
  }
  io.err(`aplspawn: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

// Run when executed as the `aplspawn` command (not when imported by tests).
const invoked = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invoked === fileURLToPath(import.meta.url)) {
  tolerateClosedOutput();
  main(process.argv.slice(2), {
    host: realHost(),
    // Container text (log tails, process names, relayed output) reaches these: no control characters.
    out: (s) => process.stdout.write(printable(s)),
    err: (s) => process.stderr.write(printable(s)),
    isTTY: process.stdout.isTTY === true,
    env: process.env,
    signals: processSignals,
    exit: (code) => process.exit(code),
  }).then((code) => {
    process.exitCode = code;
  });
}
