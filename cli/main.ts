#!/usr/bin/env node
// The CLI entry: parses argv (given as a parameter, so tests call it directly), dispatches, and
// maps every error to an exit code in exactly one place.
import { readFileSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import {
  ExitError,
  errorMessage,
  InterruptedError,
  JournalError,
  LockedError,
  TaskFailedError,
  UsageError,
} from "../src/errors.js";
import { CommandError, RootFsError } from "../src/host/host.js";
import { realHost } from "../src/host/real-host.js";
import { printable } from "../src/runner/report.js";
import { commands } from "./commands/index.js";
import { type CliIo, cliContext, type GlobalOptions, packageDir } from "./context.js";
import { processSignals, tolerateClosedOutput } from "./signals.js";

// The original tool's `-o OPERATION`: report commands keep their names, the rest are workflows.
// It stands among the global options, before any command: a command's own words (`ssh NAME --
// ip -o addr`) are never taken for it.
const REPORTS = new Set(["status", "pids", "names", "inventory"]);
/** The global options that take a value (the word after them is that value, not a command). */
const VALUED = new Set(["-c", "--config"]);
function rewriteLegacy(argv: string[]): string[] {
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "-o" || a === "--operation") break;
    // A command's name (or `--`): what follows is that command's (completion's words too).
    if (a === "--" || !a.startsWith("-")) return argv;
    if (VALUED.has(a)) i++;
  }
  if (i >= argv.length) return argv;
  const op = argv[i + 1];
  if (!op) throw new UsageError("-o needs an operation, e.g. -o netup");
  const rest = [...argv.slice(0, i), ...argv.slice(i + 2)];
  return REPORTS.has(op) ? [op, ...rest] : ["run", op, ...rest];
}

function version(): string {
  return (JSON.parse(readFileSync(resolve(packageDir, "package.json"), "utf8")) as { version: string })
    .version;
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = new Command("aplspawn")
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
  const cli = cliContext(io);
  for (const add of commands) add(program, cli);
  try {
    await program.parseAsync(rewriteLegacy(argv), { from: "user" });
    return 0;
  } catch (e) {
    return reportError(e, io, program.opts<GlobalOptions>());
  }
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
