// The console logs a failed run keeps. When a failed run rolls back a container it made, the
// container's log (nspawn.log, which goes with its directory) is moved first to
// <lab>/logs/<run>/<name>.log, so why the container did not come up outlives the rollback. One
// directory per run, named after the run's id (its start time first, so names sort by age); a lab
// keeps the newest KEPT_RUNS. A teardown keeps nothing; `run down --purge` and `cleanup` remove them.
import type { Host } from "../host/host.js";

/** How many failed runs' logs a lab keeps (older ones go when a new one is kept). */
export const KEPT_RUNS = 10;

/** A run's directory: its id without what a shell or scp reads specially (the colons of its time). */
export const runDirName = (runId: string) => runId.replace(/[^\w.-]/g, "");

// Only names runDirName makes are the lab's runs (nothing else there is pruned or searched).
const RUN_DIR = /^\d{4}-\d{2}-\d{2}T[\w.-]+$/;

/** The kept runs' directory names under logsDir, oldest first. */
async function keptRuns(host: Host, logsDir: string): Promise<string[]> {
  const names = await host.fs.readdir(logsDir).catch(() => [] as string[]);
  return names.filter((n) => RUN_DIR.test(n)).sort();
}

/**
 * Move a container's log into its failed run's directory under logsDir (made root's alone, the file
 * 0600), then let go of the oldest runs beyond KEPT_RUNS; the kept file's path, or undefined when the
 * container has no log. A link or anything but a regular file at logFile is an error, never followed.
 */
export async function keepLog(
  host: Host,
  o: { logFile: string; logsDir: string; runId: string; name: string },
): Promise<string | undefined> {
  const found = await host.fs.openRead(o.logFile);
  if (!found) return undefined;
  await found.close();
  const run = runDirName(o.runId);
  const kept = `${o.logsDir}/${run}/${o.name}.log`;
  await host.fs.mkdir(`${o.logsDir}/${run}`, 0o700);
  // A rename moves the name, never what a link points at; the file was checked to be a regular one.
  await host.fs.rename(o.logFile, kept);
  await host.fs.chmod(kept, 0o600);
  const runs = await keptRuns(host, o.logsDir);
  for (const old of runs.slice(0, Math.max(0, runs.length - KEPT_RUNS)))
    if (old !== run) await host.fs.rm(`${o.logsDir}/${old}`);
  return kept;
}

/** The newest kept log of a container, if a failed run kept one. */
export async function keptLog(host: Host, logsDir: string, name: string): Promise<string | undefined> {
  for (const run of (await keptRuns(host, logsDir)).reverse()) {
    const p = `${logsDir}/${run}/${name}.log`;
    if (await host.fs.exists(p)) return p;
  }
  return undefined;
}
