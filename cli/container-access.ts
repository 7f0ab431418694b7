// What the commands that reach into one container share: which container a name means, the key
// and known_hosts the user reaches it with, and what to say when it does not run.
import { homedir } from "node:os";
import { containerSpecs } from "../config/containers.js";
import { knownHostsPath, ownerFiles, sshKeyPath } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { ExitError, UsageError } from "../src/errors.js";
import type { LoadedConfig } from "./config-file.js";
import type { CliContext } from "./context.js";

/** A warning of a report command, on stderr (its stdout is for what it reports). */
export const warnOn = (cli: CliContext) => (message: string) => cli.io.err(`aplspawn: warning: ${message}\n`);

/** The container of this name; a usage error naming the lab's containers when there is none. */
export function spec(c: Config, name: string) {
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
export async function sshFiles(cli: CliContext, c: Config): Promise<{ key: string; knownHosts: string }> {
  if (process.getuid?.() === 0) return { key: sshKeyPath(c), knownHosts: knownHostsPath(c) };
  const f = ownerFiles(c, homedir());
  if (!(await cli.io.host.fs.exists(f.key)))
    throw new ExitError(
      `you have no copy of the lab's key (${f.key}): lab ${c.lab} is down, or was brought up without sudo from your account (\`sudo aplspawn run up\` gives SUDO_USER a copy); or use sudo`,
    );
  return f;
}

/** Why a container cannot be entered: it is not running, and whether its lab is; and what brings it up. */
export async function notRunning(cli: CliContext, l: LoadedConfig, name: string): Promise<string> {
  const [{ labState }, { labLook }] = await Promise.all([
    import("../src/lab/state.js"),
    import("../workflows/lab-params.js"),
  ]);
  const s = await labState(cli.io.host, labLook(l.config));
  const lab =
    s.containersUp > 0 || s.live ? `lab ${l.config.lab} is up, but not it` : `lab ${l.config.lab} is down`;
  return `container ${name} is not running (${lab}): \`${cli.upCommand(l)}\` brings it up`;
}

/** As root: fail at once, saying so, when the container does not run (ssh would wait on it). */
export async function mustRun(cli: CliContext, l: LoadedConfig, name: string): Promise<void> {
  if (cli.io.host.uid() !== 0) return;
  const [{ containerStates }, { labLook }] = await Promise.all([
    import("../src/lab/state.js"),
    import("../workflows/lab-params.js"),
  ]);
  const st = (
    await containerStates(cli.io.host, labLook(l.config), { journaledOnly: true, warn: warnOn(cli) })
  ).find((x) => x.name === name);
  if (!st?.leaderPid) throw new ExitError(await notRunning(cli, l, name));
}

/** A command that went into a container exits with its code. */
export function passOn(what: string, code: number): void {
  if (code !== 0) throw new ExitError(`${what} exited with code ${code}`, code);
}
