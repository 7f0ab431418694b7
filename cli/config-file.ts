// The config file the CLI uses: -c FILE, else ./aplspawn.yaml, else the packaged default; the files
// it names that must exist already are checked here (config/ itself reads nothing), and, when a
// command asks, the playbook it names and the host's network interfaces.
import { resolve } from "node:path";
import { ConfigError, type Diagnostic, type Problem } from "../config/diagnostic.js";
import { concerns, parseConfig, placeProblems } from "../config/load.js";
import { playbookFile } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import type { Host } from "../src/host/host.js";
import type { Owner } from "../src/lab/owner.js";

/** A config as the CLI found it: which file, and whether it is the packaged default. */
export interface LoadedConfig {
  config: Config;
  file: string;
  /** No -c, no APLSPAWN_CONFIG and no ./aplspawn.yaml: the package's own config/aplspawn.yaml. */
  packaged: boolean;
}

/** What a command checks beyond the config itself. */
export interface LoadChecks {
  /**
   * provision.playbook must exist and pass ansible-playbook --syntax-check, run as `owner` (as
   * provision will run it). Without ansible-playbook the check is skipped, and `warn` told.
   */
  playbook?: { owner?: (c: Config) => Promise<Owner | undefined> };
  /** network.bridge, when an interface of that name exists here, must be a bridge. */
  interfaces?: boolean;
  /** The binds' host paths (src/lab/binds.ts), which may be root's or this uid's. */
  binds?: { owner?: number };
  /** Told what could not be checked. */
  warn?: (message: string) => void;
}

/**
 * Find and load the config: -c FILE (or APLSPAWN_CONFIG, which the caller passes as file), else
 * ./aplspawn.yaml, else the packaged config/aplspawn.yaml.
 */
export async function loadConfig(
  host: Host,
  file: string | undefined,
  packageDir: string,
  checks: LoadChecks = {},
): Promise<LoadedConfig> {
  const packaged = resolve(packageDir, "config/aplspawn.yaml");
  const candidates = file ? [resolve(file)] : [resolve("aplspawn.yaml"), packaged];
  for (const c of candidates) {
    const st = await host.fs.stat(c);
    if (!st) continue;
    if (!st.isFile) throw fileProblem(`Config ${c} is not a file (a YAML file is expected)`, c, "not a file");
    let text: string;
    try {
      text = await host.fs.readFile(c);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === "EACCES" ? "permission denied" : (e as Error).message;
      throw fileProblem(`Config ${c} cannot be read: ${why}`, c, `cannot be read: ${why}`);
    }
    try {
      const config = parseConfig(text, c);
      const problems = await fileChecks(host, config, checks);
      if (problems.length > 0) throw new ConfigError(c, placeProblems(text, problems));
      return { config, file: c, packaged: c === packaged && !file };
    } catch (e) {
      // A bad config is a usage error (exit 2), reported like the others by the one top-level catch.
      if (!(e instanceof ConfigError)) throw e;
      // Every phase in one run: the files the rest of the config names are checked too.
      const more = e.partial
        ? (await fileChecks(host, e.partial, checks)).filter((p) => !e.wrong.some((w) => concerns(p.at, w)))
        : [];
      throw more.length ? new ConfigError(c, [...e.items, ...placeProblems(text, more)]) : e;
    }
  }
  throw fileProblem(`Config file not found: ${candidates.join(" or ")}`, candidates[0]!, "no such file");
}

// A config file that cannot be read at all: a usage error, and for --json a diagnostic of the file.
function fileProblem(text: string, file: string, message: string): UsageError {
  const d: Diagnostic = { path: "", message };
  return new UsageError(text, { cause: new ConfigError(file, [d]) });
}

// Files the config names that must exist already, and what `checks` asks of the host (reads only).
async function fileChecks(host: Host, c: Config, checks: LoadChecks): Promise<Problem[]> {
  const problems: Problem[] = [];
  const key = c.containers.sshKey;
  if (key !== undefined) {
    for (const f of [key, `${key}.pub`])
      if (!(await host.fs.stat(resolve(f)))?.isFile)
        problems.push({
          at: ["containers", "sshKey"],
          message: `${resolve(f)} does not exist: leave the key out to have one generated`,
        });
  }
  const ctx = { host, signal: new AbortController().signal };
  if (checks.playbook && c.provision) {
    const r = await playbookProblem(host, c.provision, await checks.playbook.owner?.(c));
    if (r.ok === false) problems.push({ at: ["provision", "playbook"], message: r.problem });
    else if (r.ok === "unchecked")
      checks.warn?.(`${r.why}: provision.playbook was not checked (ansible-playbook --syntax-check)`);
  }
  if (checks.binds) {
    const [{ configBinds }, { bindHostProblem }] = await Promise.all([
      import("../config/binds.js"),
      import("../src/lab/binds.js"),
    ]);
    const { owner } = checks.binds;
    for (const { at, bind } of configBinds(c)) {
      const p = await bindHostProblem(host, bind, owner === undefined ? [0] : [0, owner]);
      if (p) problems.push({ at: [...at, "host"], message: p });
    }
  }
  if (c.cluster && checks.interfaces)
    problems.push(...(await (await import("../src/cluster/hosts.js")).clusterPlan(ctx, c)).problems);
  if (checks.interfaces && (await host.which("ip"))) {
    const { linkInfo } = await import("../src/net/links.js");
    // What ip cannot tell is left to the bridge task, which asks again when it makes the bridge.
    const l = await linkInfo(ctx, c.network.bridge).catch((e: Error) => {
      checks.warn?.(`network.bridge was not checked against this host's interfaces: ${e.message}`);
      return undefined;
    });
    if (l && l.kind !== "bridge")
      problems.push({
        at: ["network", "bridge"],
        message: `${l.name} is an interface of this host that is not a bridge (${l.kind ? `a ${l.kind}` : "a network device"}): give the lab a bridge of its own, e.g. nspawnd0`,
      });
  }
  return problems;
}

async function playbookProblem(host: Host, p: NonNullable<Config["provision"]>, owner: Owner | undefined) {
  const { checkPlaybook } = await import("../src/lab/playbook-check.js");
  const ctx = { host, signal: new AbortController().signal };
  return checkPlaybook(ctx, playbookFile(p), p.args, owner);
}

/**
 * Before `run up` (or `run provision`) changes anything: provision.playbook exists and passes
 * ansible-playbook --syntax-check as `owner`, who will run it; else a usage error (exit 2) placed
 * at the key, as validate reports it. Without ansible-playbook the playbook cannot run at all.
 */
export async function requirePlaybook(host: Host, file: string, c: Config, owner?: Owner): Promise<void> {
  if (!c.provision) return;
  const r = await playbookProblem(host, c.provision, owner);
  // Not checked for another reason (an ansible.cfg not to be trusted): provision says it as it runs.
  if (r.ok === true || (r.ok === "unchecked" && !r.missing)) return;
  const message = r.ok === false ? r.problem : `${r.why}; the playbook cannot run without it`;
  throw await configProblem(host, file, { at: ["provision", "playbook"], message });
}

/**
 * A problem of a loaded config that a command finds (exit 2), placed where its key is written, as
 * validate reports the config's own; unplaced when the file cannot be read again.
 */
export async function configProblem(host: Host, file: string, problem: Problem): Promise<ConfigError> {
  const text = await host.fs.readFile(file).catch(() => "");
  return new ConfigError(file, placeProblems(text, [problem]));
}
