// The config file the CLI uses: -c FILE, else ./aplspawn.yaml, else the packaged default; the files
// it names that must exist already are checked here (config/ itself reads nothing).
import { resolve } from "node:path";
import { ConfigError, concerns, parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import type { Host } from "../src/host/host.js";
import { UsageError } from "../src/runner/errors.js";

/** A config as the CLI found it: which file, and whether it is the packaged default. */
export interface LoadedConfig {
  config: Config;
  file: string;
  /** No -c, no APLSPAWN_CONFIG and no ./aplspawn.yaml: the package's own config/aplspawn.yaml. */
  packaged: boolean;
}

/**
 * Find and load the config: -c FILE (or APLSPAWN_CONFIG, which the caller passes as file), else
 * ./aplspawn.yaml, else the packaged config/aplspawn.yaml.
 */
export async function loadConfig(
  host: Host,
  file: string | undefined,
  packageDir: string,
): Promise<LoadedConfig> {
  const packaged = resolve(packageDir, "config/aplspawn.yaml");
  const candidates = file ? [resolve(file)] : [resolve("aplspawn.yaml"), packaged];
  for (const c of candidates) {
    const st = await host.fs.stat(c);
    if (!st) continue;
    if (!st.isFile) throw new UsageError(`Config ${c} is not a file (a YAML file is expected)`);
    try {
      const config = parseConfig(await host.fs.readFile(c), c);
      const problems = await fileChecks(host, config);
      if (problems.length > 0) throw new ConfigError(c, problems);
      return { config, file: c, packaged: c === packaged && !file };
    } catch (e) {
      // A bad config is a usage error (exit 2), reported like the others by the one top-level catch.
      if (!(e instanceof ConfigError)) throw e;
      // Every phase in one run: the files the rest of the config names are checked too.
      const more = e.partial
        ? (await fileChecks(host, e.partial)).filter((p) => !e.wrong.some((w) => concerns(p, w)))
        : [];
      const all = more.length ? new ConfigError(c, [...e.problems, ...more]) : e;
      throw new UsageError(all.message, { cause: all });
    }
  }
  throw new UsageError(`Config file not found: ${candidates.join(" or ")}`);
}

// Files the config names that must exist already (reads only).
async function fileChecks(host: Host, c: Config): Promise<string[]> {
  const problems: string[] = [];
  const key = c.containers.sshKey;
  if (key !== undefined) {
    for (const f of [key, `${key}.pub`])
      if (!(await host.fs.stat(resolve(f)))?.isFile)
        problems.push(
          `containers.sshKey: ${resolve(f)} does not exist (leave the key out to have one generated)`,
        );
  }
  return problems;
}
