// `aplspawn exec NAME -- CMD…`: a command in a container, started by the container's own systemd,
// without ssh (src/lab/enter.ts).
import type { Command } from "commander";
import { ExitError } from "../../src/errors.js";
import { notRunning, passOn, spec, warnOn } from "../container-access.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** `aplspawn exec`: root only, on the nspawn process the journal recorded. */
export const execCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("exec"), ["sudo aplspawn exec web1 -- journalctl -b --no-pager"])
    .description(
      "run a command in a container, started by the container's own systemd, without ssh (exec NAME -- CMD…)",
    )
    .argument("<name>", "container name")
    .argument("<command...>", "the command and its arguments")
    .action(async (name: string, command: string[], _o: unknown, cmd: Command) => {
      const loaded = await cli.loadFile(globals(cmd));
      const c = loaded.config;
      const s = spec(c, name);
      // Across hosts: the container's host runs exec (as root there), reached over ssh.
      if (c.cluster) return (await import("../cluster-commands.js")).clusterExec(cli, loaded, name, command);
      // No systemd inside to start the command as one of the container's own processes; entering
      // with host tools is what exec no longer does (src/lab/enter.ts).
      if (s.init === "script")
        throw new ExitError(
          `${name} runs \`init: script\` (no systemd in it to start the command): use \`aplspawn ssh ${name} -- ${command.join(" ")}\``,
        );
      const host = cli.io.host;
      if (host.uid() !== 0) throw new ExitError("exec must run as root (or use `aplspawn ssh`)");
      const [{ containerStates }, { execRequest, runInContainer }, { labLook }] = await Promise.all([
        import("../../src/lab/state.js"),
        import("../../src/lab/enter.js"),
        import("../../workflows/lab-params.js"),
      ]);
      // Only the nspawn process the journal recorded (PID and start time), verified to be the host's
      // systemd-nspawn: never a process found by its name.
      const st = (await containerStates(host, labLook(c), { journaledOnly: true, warn: warnOn(cli) })).find(
        (x) => x.name === name,
      );
      if (!st?.leaderPid) throw new ExitError(await notRunning(cli, loaded, name));
      // A pty of the container's when we are on a terminal (both ways), as ssh gives one; else pipes.
      const terminal =
        process.stdin.isTTY && process.stdout.isTTY
          ? { term: cli.io.env.TERM, rows: process.stdout.rows, cols: process.stdout.columns }
          : undefined;
      const req = await execRequest(host, st.leaderPid, command, terminal);
      passOn(`${command[0]} in ${name}`, await runInContainer(req));
    });
