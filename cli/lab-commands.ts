// The lab commands of the CLI: status, pids, names, inventory, ssh, exec, logs (the original tool's
// report operations, plus ways into a container and its console log). What a command needs beyond the config (probes,
// the journal reader, yaml) is imported when it runs: `aplspawn --version` starts without it.
import { setMaxListeners } from "node:events";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { containerSpecs } from "../config/containers.js";
import { labImages } from "../config/images.js";
import {
  consoleLogPath,
  keptLogsDir,
  knownHostsPath,
  labDir,
  ownerFiles,
  sshKeyPath,
} from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { ExitError, UsageError } from "../src/errors.js";
import { type LineCount, parseLineCount } from "../src/lab/console-log.js";
import { pinnedOptions } from "../src/lab/ssh.js";
import type { ProbeResult } from "../src/runner/probe.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliContext, CommandAdder, GlobalOptions } from "./context.js";

const globals = (cmd: Command) => cmd.optsWithGlobals() as GlobalOptions;

/** The status table in the original tool's style; a header line before each container's checks. */
function renderStatus(c: Config, results: readonly ProbeResult[]): string {
  const specs = new Map(containerSpecs(c).map((s) => [s.name, s]));
  const prefix = c.network.address.split("/")[1];
  // With several images, an image's check says which one.
  const images = labImages(c).map((i) => i.path);
  const lines: string[] = [];
  let last: string | undefined;
  for (const r of results) {
    const s = specs.get(r.target);
    if (s && r.target !== last) lines.push(`‣ [ INFO ] Checking container ${s.name}, ip ${s.ip}/${prefix}`);
    last = r.target;
    const name = images.length > 1 && images.includes(r.target) ? `${r.name} (${r.target})` : r.name;
    lines.push(r.ok ? `‣ [ OK ] ${name}` : `‣ [ FAIL ] ${name}${r.detail ? `: ${r.detail}` : ""}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  lines.push(
    failed === 0
      ? `‣ [ DONE ] all ${results.length} checks passed`
      : `‣ [ FAILED ] ${failed} of ${results.length} checks failed`,
  );
  return `${lines.join("\n")}\n`;
}

const status: CommandAdder = (program, cli) =>
  program
    .command("status")
    .description("check the network, image and every container (exit 0 only when all pass)")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const loaded = await cli.loadFile(g);
      const c = loaded.config;
      const [{ statusProbes }, { runProbes }, { loginProbes }] = await Promise.all([
        import("../workflows/status.js"),
        import("../src/runner/probe.js"),
        import("../tasks/status/container.js"),
      ]);
      if (!g.json) cli.io.out(`‣ [ INFO ] ${cli.whichLab(loaded)}\n`);
      // Not root: what the user's own copies reach (ssh logins); the rest is root's to read.
      const asRoot = process.getuid?.() === 0;
      // A lab that is down is said to be, at once: not a FAIL line for every check of every container.
      if (asRoot) {
        const { labState } = await import("../src/lab/state.js");
        const s = await labState(cli.io.host, c);
        if (!s.live && s.containersUp === 0) {
          if (g.json) cli.io.out(`${JSON.stringify({ ok: false, state: "down", checks: [] })}\n`);
          throw new ExitError(
            `lab ${c.lab} is down: nothing of it runs; bring it up with \`${cli.upCommand(loaded)}\``,
          );
        }
      }
      if (!asRoot && !g.json)
        cli.io.out(
          "‣ [ INFO ] not root: checking ssh logins only; the network, image, mounts and processes need root (sudo aplspawn status)\n",
        );
      const probes = asRoot ? statusProbes(c) : loginProbes(c, await sshFiles(cli, c));
      const signal = new AbortController().signal;
      // Every concurrent probe's command listens on this one signal.
      setMaxListeners(0, signal);
      const results = await runProbes(probes, { host: cli.io.host, signal });
      const ok = results.every((r) => r.ok);
      if (g.json)
        cli.io.out(
          `${JSON.stringify({ ok, checks: results.map((r) => ({ name: r.name, target: r.target, ok: r.ok, detail: r.detail ?? "" })) })}\n`,
        );
      else cli.io.out(renderStatus(c, results));
      if (!ok) throw new ExitError(`${results.filter((r) => !r.ok).length} status checks failed`);
    });

/** A warning of a report command, on stderr (its stdout is for what it reports). */
const warnOn = (cli: CliContext) => (message: string) => cli.io.err(`aplspawn: warning: ${message}\n`);

const pids: CommandAdder = (program, cli) =>
  program
    .command("pids")
    .description("the leader PID of each running container, one per line")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const { containerStates } = await import("../src/lab/state.js");
      const states = await containerStates(cli.io.host, c, { warn: warnOn(cli) });
      const live = states.filter((s) => s.leaderPid !== undefined);
      if (g.json) cli.io.out(`${JSON.stringify(states)}\n`);
      else cli.io.out(live.map((s) => `${s.leaderPid}\n`).join(""));
      const down = states.filter((s) => s.leaderPid === undefined).map((s) => s.name);
      if (down.length > 0) throw new ExitError(`not running: ${down.join(", ")}`);
    });

const names: CommandAdder = (program, cli) =>
  program
    .command("names")
    .description("the lab's container names, one per line (of the sets named, when SET… is given)")
    .argument("[set...]", "only the containers of these sets (containers.sets)")
    .action(async (sets: string[], _o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const known = c.containers.sets?.map((s) => s.name) ?? [];
      const unknown = sets.filter((s) => !known.includes(s));
      if (unknown.length > 0)
        throw new UsageError(
          `no set named ${unknown.join(", ")} in this lab; ${known.length ? `sets: ${known.join(", ")}` : "it has no containers.sets"}`,
        );
      const n = containerSpecs(c)
        .filter((s) => sets.length === 0 || (s.set !== undefined && sets.includes(s.set)))
        .map((s) => s.name);
      cli.io.out(g.json ? `${JSON.stringify(n)}\n` : n.map((x) => `${x}\n`).join(""));
    });

const inventory: CommandAdder = (program, cli) =>
  program
    .command("inventory")
    .description("write the Ansible inventory (hosts with address, user, key and pinned host keys)")
    .addOption(
      new Option(
        "--format <format>",
        "ini or yaml (default: inventory.format); json: Ansible's --list shape, on stdout (for inventory scripts and tools)",
      ).choices(["ini", "yaml", "json"]),
    )
    .option("--output <file>", "where to write it (default: inventory.file); - for stdout")
    .action(async (o: { format?: string; output?: string }, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const format = (o.format ?? c.inventory.format) as "ini" | "yaml" | "json";
      const { inventorySpec, renderInventory, inventoryList } = await import("../src/lab/inventory.js");
      if (format === "json") {
        // Ansible reads this shape from an inventory script's stdout, never from a file.
        if (o.output !== undefined && o.output !== "-")
          throw new UsageError(
            "--format json prints to stdout (an inventory script's answer); leave out --output",
          );
        cli.io.out(`${JSON.stringify(inventoryList(inventorySpec(c, "yaml")), null, 2)}\n`);
        return;
      }
      const text = renderInventory(inventorySpec(c, format));
      if (o.output === "-") {
        cli.io.out(text);
        return;
      }
      // Where a config says, root writes only under the config's own directory (an --output the
      // user typed is theirs to choose).
      if (o.output === undefined && cli.io.host.uid() === 0) {
        const l = await cli.loadFile(g);
        const { inventoryPlaceProblem } = await import("../src/lab/config-trust.js");
        const problem = inventoryPlaceProblem(c, l.file, l.packaged);
        if (problem) throw new UsageError(problem);
      }
      const file = resolve(o.output ?? c.inventory.file);
      await cli.io.host.fs.writeFile(file, text, 0o644);
      cli.io.out(
        g.json
          ? `${JSON.stringify({ ok: true, file })}\n`
          : `‣ [ OK ] Generated ansible inventory file ${file}\n`,
      );
    });

function spec(c: Config, name: string) {
  const s = containerSpecs(c).find((x) => x.name === name);
  if (!s)
    throw new UsageError(
      `no container named ${name} in this lab; containers: ${containerSpecs(c)
        .map((x) => x.name)
        .join(", ")}`,
    );
  return s;
}

/**
 * The key and known_hosts this user reaches the lab with: root's, or for anyone else their own
 * copies, which `sudo aplspawn run up` gives the user who ran it (config/paths.ts ownerFiles).
 */
async function sshFiles(cli: CliContext, c: Config): Promise<{ key: string; knownHosts: string }> {
  if (process.getuid?.() === 0) return { key: sshKeyPath(c), knownHosts: knownHostsPath(c) };
  const f = ownerFiles(c, homedir());
  if (!(await cli.io.host.fs.exists(f.key)))
    throw new ExitError(
      `you have no copy of the lab's key (${f.key}): lab ${c.lab} is down, or was brought up without sudo from your account (\`sudo aplspawn run up\` gives SUDO_USER a copy); or use sudo`,
    );
  return f;
}

/** Why a container cannot be entered: it is not running, and whether its lab is; and what brings it up. */
async function notRunning(cli: CliContext, l: LoadedConfig, name: string): Promise<string> {
  const { labState } = await import("../src/lab/state.js");
  const s = await labState(cli.io.host, l.config);
  const lab =
    s.containersUp > 0 || s.live ? `lab ${l.config.lab} is up, but not it` : `lab ${l.config.lab} is down`;
  return `container ${name} is not running (${lab}): \`${cli.upCommand(l)}\` brings it up`;
}

/** As root: fail at once, saying so, when the container does not run (ssh would wait on it). */
async function mustRun(cli: CliContext, l: LoadedConfig, name: string): Promise<void> {
  if (cli.io.host.uid() !== 0) return;
  const { containerStates } = await import("../src/lab/state.js");
  const st = (await containerStates(cli.io.host, l.config, { journaledOnly: true, warn: warnOn(cli) })).find(
    (x) => x.name === name,
  );
  if (!st?.leaderPid) throw new ExitError(await notRunning(cli, l, name));
}

function passOn(what: string, code: number): void {
  if (code !== 0) throw new ExitError(`${what} exited with code ${code}`, code);
}

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

const ssh: CommandAdder = (program, cli) =>
  program
    .command("ssh")
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
      const { runInteractive } = await import("../src/lab/interactive.js");
      passOn(`ssh to ${t.name}`, await runInteractive("ssh", args));
    });

const exec: CommandAdder = (program, cli) =>
  program
    .command("exec")
    .description(
      "run a command in a container, started by the container's own systemd, without ssh (exec NAME -- CMD…)",
    )
    .argument("<name>", "container name")
    .argument("<command...>", "the command and its arguments")
    .action(async (name: string, command: string[], _o: unknown, cmd: Command) => {
      const loaded = await cli.loadFile(globals(cmd));
      const c = loaded.config;
      const s = spec(c, name);
      // No systemd inside to start the command as one of the container's own processes; entering
      // with host tools is what exec no longer does (src/lab/enter.ts).
      if (s.init === "script")
        throw new ExitError(
          `${name} runs \`init: script\` (no systemd in it to start the command): use \`aplspawn ssh ${name} -- ${command.join(" ")}\``,
        );
      const host = cli.io.host;
      if (host.uid() !== 0) throw new ExitError("exec must run as root (or use `aplspawn ssh`)");
      const [{ containerStates }, { execRequest, runInContainer }] = await Promise.all([
        import("../src/lab/state.js"),
        import("../src/lab/enter.js"),
      ]);
      // Only the nspawn process the journal recorded (PID and start time), verified to be the host's
      // systemd-nspawn: never a process found by its name.
      const st = (await containerStates(host, c, { journaledOnly: true, warn: warnOn(cli) })).find(
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

/** Lines `logs` shows without -n. */
const LOG_LINES = 50;

const logs: CommandAdder = (program, cli) =>
  program
    .command("logs")
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
        import("../src/lab/console-log.js"),
        import("../src/lab/kept-logs.js"),
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

/** Commands added to the program. */
export const labCommands: CommandAdder[] = [status, pids, names, inventory, ssh, exec, logs];
