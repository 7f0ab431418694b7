// `aplspawn ssh [USER@]NAME [-- CMD…]`: ssh into a container with the lab's key and its pinned
// host keys.
import type { Command } from "commander";
import { containerSpecs } from "../../config/containers.js";
import type { Config } from "../../config/schema.js";
import { ExitError, UsageError } from "../../src/errors.js";
import { pinnedOptions } from "../../src/lab/ssh.js";
import { mustRun, passOn, spec, sshFiles } from "../container-access.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/**
 * Which container `ssh [TARGET] [CMD…]` means, as whom, and the command: TARGET is NAME or
 * USER@NAME; in a lab of one container it may be left out (then a first word that names no
 * container is the command's).
 */
export function sshTarget(
  c: Config,
  target: string | undefined,
  command: string[],
): { name: string; user: string | undefined; command: string[] } {
  const names = containerSpecs(c).map((x) => x.name);
  const at = target?.lastIndexOf("@") ?? -1;
  const user = target && at > 0 ? target.slice(0, at) : undefined;
  const name = target && at >= 0 ? target.slice(at + 1) : target;
  if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw new UsageError(`"${user}" is not a user name (lower case, digits, _ and -)`);
  if (name !== undefined && names.includes(name)) return { name, user, command };
  if (names.length === 1 && names[0] !== undefined && at < 0)
    return {
      name: names[0],
      user: undefined,
      command: target === undefined ? command : [target, ...command],
    };
  if (name === undefined)
    throw new UsageError(`the lab has ${names.length} containers: name one (${names.join(", ")})`);
  spec(c, name);
  return { name, user, command };
}

/** `aplspawn ssh`: fails at once when the container does not run, rather than wait on it. */
export const sshCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("ssh"), [
    "aplspawn ssh web1",
    "aplspawn ssh root@web1 -- systemctl is-system-running",
  ])
    .description(
      "ssh into a container with the lab's key and pinned host keys (ssh [USER@]NAME [-- CMD…]; NAME may be left out in a lab of one)",
    )
    .argument("[target]", "[USER@]NAME of the container")
    .argument("[command...]", "command to run instead of a shell")
    .option(
      "-l, --login <user>",
      "user to log in as (default: the container's user, its set's or containers.user)",
    )
    .action(async (target: string | undefined, command: string[], o: { login?: string }, cmd: Command) => {
      const loaded = await cli.loadFile(globals(cmd));
      const c = loaded.config;
      const t = sshTarget(c, target, command);
      if (c.cluster) return (await import("../cluster-commands.js")).clusterSsh(cli, loaded, t, o.login);
      const s = spec(c, t.name);
      const files = await sshFiles(cli, c);
      await mustRun(cli, loaded, t.name);
      // Root knows the container runs; anyone else asks its sshd, briefly: a lab that is down has
      // no bridge behind the address, where ssh would wait for minutes.
      if (cli.io.host.uid() !== 0 && !(await cli.io.host.canConnect(s.ip, 22, 1500)))
        throw new ExitError(
          `container ${t.name} (${s.ip}) does not answer on port 22: is lab ${c.lab} up? \`${cli.upCommand(loaded)}\` brings it up`,
        );
      const args = [
        "-i",
        files.key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
        ...pinnedOptions(files.knownHosts),
        "-l",
        t.user ?? o.login ?? s.user,
        s.ip,
        ...(t.command.length ? ["--", ...t.command] : []),
      ];
      const { runInteractive } = await import("../../src/lab/interactive.js");
      passOn(`ssh to ${t.name}`, await runInteractive("ssh", args));
    });
