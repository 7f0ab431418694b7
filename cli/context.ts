// What the CLI's commands share: its I/O, the global options, the context handed to each command
// (loading the config, running a workflow and rendering its events), and help's examples.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { labDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import { type Host, shellQuote } from "../src/host/host.js";
import {
  type OutputMode,
  type RunEvent,
  renderEvent,
  type SummaryEvent,
  shownWhenQuiet,
} from "../src/runner/report.js";
import type { Workflow } from "../src/runner/task.js";
import type { LoadChecks, LoadedConfig } from "./config-file.js";
import { runInterrupts, type SignalSource } from "./signals.js";

/** Where the package lives (for the default config and the version). */
export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** What the CLI writes to and runs against; tests pass their own. */
export interface CliIo {
  host: Host;
  out(text: string): void;
  err(text: string): void;
  isTTY: boolean;
  env: Record<string, string | undefined>;
  /** The signals that interrupt a run (the real process's SIGINT, SIGTERM and SIGHUP; tests pass none). */
  signals?: SignalSource;
  /** End the process at once with this code (a second interrupt). */
  exit(code: number): never;
}

/** Global options every command accepts. */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  verbose?: boolean;
  /** -q: only warnings, failures and the summary. */
  quiet?: boolean;
  /** --no-color sets this false. */
  color?: boolean;
}

/** Shared helpers handed to commands. */
export interface CliContext {
  io: CliIo;
  load(g: GlobalOptions): Promise<Config>;
  /** The config and the file it came from (-c, APLSPAWN_CONFIG, ./aplspawn.yaml or the packaged one). */
  loadFile(g: GlobalOptions, checks?: LoadChecks): Promise<LoadedConfig>;
  /** The line a command acting on a lab starts with: which lab, from which config. */
  whichLab(l: LoadedConfig): string;
  /** The command that brings this lab up (what to do about a lab or container that is not up). */
  upCommand(l: LoadedConfig): string;
  mode(g: GlobalOptions): OutputMode;
  /** Run a workflow of the lab, rendering its events on stdout. */
  run(
    workflow: Workflow,
    config: Config,
    g: GlobalOptions,
    o: {
      dryRun?: boolean;
      noRollback?: boolean;
      command: string;
      /** Told every event (`aplspawn test` keeps a step's output for its report). */
      onEvent?: (e: RunEvent) => void;
      /** Put before each line (labs run side by side: whose line it is). */
      prefix?: string;
      /** Instead of the one the global options give (side by side: plain lines, never the live tree). */
      mode?: OutputMode;
    },
  ): Promise<SummaryEvent>;
}

/** Adds one command to the program. */
export type CommandAdder = (program: Command, cli: CliContext) => void;

/** The global options as a command's action sees them. */
export const globals = (cmd: Command) => cmd.optsWithGlobals() as GlobalOptions;

/** A command's help ends with its examples: command lines that work as they are. */
export function withExamples(cmd: Command, examples: readonly string[]): Command {
  return cmd.addHelpText("after", `\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}\n`);
}

/** A --json line of a run: the event, with when (ISO 8601, UTC) and which lab. */
export const jsonLine = (lab: string, e: object) =>
  JSON.stringify({ ts: new Date().toISOString(), lab, ...e });

// zod and yaml cost ~150 ms to load: only commands that read the config pay for them.
export const loadConfig: typeof import("./config-file.js").loadConfig = async (...a) =>
  (await import("./config-file.js")).loadConfig(...a);

/** The context every command gets: config loading, the lab's lines, and running a workflow. */
export function cliContext(io: CliIo): CliContext {
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
    upCommand: (l) => `sudo aplspawn${l.packaged ? "" : ` -c ${shellQuote(l.file)}`} run up`,
    // -q: plain lines (no live tree), and only what shownWhenQuiet keeps.
    mode: (g) => (g.json ? "json" : io.isTTY && !g.quiet ? "tty" : "plain"),
    async run(workflow, config, g, o) {
      const mode = o.mode ?? cli.mode(g);
      const { runWorkflow } = await import("../src/runner/runner.js");
      const { taskRegistry } = await import("../tasks/index.js");
      const [{ labUndoScope }, { labPlaces }] = await Promise.all([
        import("../src/lab/undo-scope.js"),
        import("../workflows/lab-params.js"),
      ]);
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
          // --no-color: told to the renderer, not to the environment every command inherits.
          ...(g.color === false ? { color: false } : {}),
          failAfter: io.env.APLSPAWN_FAIL_AFTER || undefined,
          command: o.command,
          interrupt: interrupt.signal,
          undoScope: labUndoScope(labPlaces(config)),
        });
      } finally {
        interrupt.off();
      }
    },
  };
  return cli;
}
