// What the CLI's commands share: its I/O, the global options and the context handed to each command.
import type { Command } from "commander";
import type { Config } from "../config/schema.js";
import type { Host } from "../src/host/host.js";
import type { OutputMode, RunEvent, SummaryEvent } from "../src/runner/report.js";
import type { Workflow } from "../src/runner/task.js";
import type { LoadChecks, LoadedConfig } from "./config-file.js";
import type { SignalSource } from "./signals.js";

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
