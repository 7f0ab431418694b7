// `aplspawn logs NAME [-f] [-n N]`: a container's console log, or the one a failed run kept.
import type { Command } from "commander";
import { consoleLogPath, keptLogsDir, labDir } from "../../config/paths.js";
import { ExitError } from "../../src/errors.js";
import { type LineCount, parseLineCount } from "../../src/lab/console-log.js";
import { spec } from "../container-access.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** Lines `logs` shows without -n. */
const LOG_LINES = 50;

/** `aplspawn logs`: Ctrl-C ends following, with exit 0. */
export const logsCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("logs"), ["sudo aplspawn logs web1 -f", "sudo aplspawn logs web1 -n all"])
    .description("a container's console log: its last lines, or follow it (logs NAME [-f] [-n N])")
    .argument("<name>", "container name")
    .option(
      "-n, --lines <n>",
      `how many of the last lines: a number, or all (default ${LOG_LINES})`,
      parseLineCount,
    )
    .option("-f, --follow", "go on printing what is appended, through restarts, until Ctrl-C")
    .action(async (name: string, o: { lines?: LineCount; follow?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      spec(c, name);
      const host = cli.io.host;
      if (host.uid() !== 0)
        throw new ExitError(`logs must run as root: the lab's directory ${labDir(c)} is root's alone`);
      const [{ showLog }, { keptLog }] = await Promise.all([
        import("../../src/lab/console-log.js"),
        import("../../src/lab/kept-logs.js"),
      ]);
      const stop = new AbortController();
      // Ctrl-C ends following (exit 0): it is how one stops reading.
      const off = o.follow ? cli.io.signals?.(() => stop.abort()) : undefined;
      const log = consoleLogPath(c, name);
      try {
        const shown = await showLog(host, log, {
          lines: o.lines ?? LOG_LINES,
          follow: o.follow === true,
          signal: stop.signal,
          onLine: (line) =>
            cli.io.out(g.json ? `${JSON.stringify({ container: name, line })}\n` : `${line}\n`),
        });
        if (shown) return;
      } finally {
        off?.();
      }
      const kept = await keptLog(host, keptLogsDir(c), name);
      throw new ExitError(
        kept
          ? `${name} has no log now (${log}); the log a failed run kept of it is ${kept}`
          : `${name} has no log (${log}): it has not been started since it was last removed`,
      );
    });
