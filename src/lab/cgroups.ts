// A cgroup of its own for each container, where no systemd manages cgroups (no systemd as PID 1,
// so no machined and no scope unit). systemd-nspawn --keep-unit makes the container's cgroup a
// subgroup ("payload") of its own cgroup: two containers started from one cgroup share it, and each
// container's systemd then removes the other's unit cgroups ("Failed at step CGROUP"), so units
// fail at random under load (seen with 3 to 30 containers). So nspawn is started from a cgroup
// made for its container, in the hierarchies systemd uses: cgroup2 and the named v1 "systemd" one.

import type { Host } from "../host/host.js";
import { type MountInfo, readMounts } from "../host/mounts.js";
import { type RunContext, runKey } from "../host/run-scope.js";
import { serializer } from "../host/serial.js";

/** The mount points of the hierarchies systemd tracks processes in. */
function systemdHierarchies(ms: readonly MountInfo[]): string[] {
  return ms
    .filter(
      (m) => m.fstype === "cgroup2" || (m.fstype === "cgroup" && m.superOptions.includes("name=systemd")),
    )
    .map((m) => m.mountPoint);
}

/** A container's cgroups, one per hierarchy. */
export async function containerCgroups(host: Host, name: string): Promise<string[]> {
  return systemdHierarchies(await readMounts(host)).map((m) => `${m}/aplspawn/${name}`);
}

/** The cgroup directories (one per mounted hierarchy) a process is in, by hierarchy mount point. */
export async function cgroupsOf(host: Host, pid: number | "self"): Promise<Map<string, string>> {
  const ms = await readMounts(host);
  const out = new Map<string, string>();
  for (const line of (await host.fs.readFile(`/proc/${pid}/cgroup`)).split("\n")) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    const m = ms.find((x) =>
      controllers === ""
        ? x.fstype === "cgroup2"
        : x.fstype === "cgroup" && x.superOptions.includes(controllers!),
    );
    // A path that leaves its hierarchy's root is refused (the kernel writes these lines, but the
    // process may be anyone's).
    if (m && !path.split("/").includes(".."))
      out.set(m.mountPoint, `${m.mountPoint}${path === "/" ? "" : path}`);
  }
  return out;
}

// The moves into a container's cgroups and its fork, one container at a time in the whole process:
// it is the process itself that moves, and `aplspawn test --all` runs labs side by side in one
// process. So this lock is the process's, not a run's (src/host/run-scope.ts): the one mutex kept
// at module level.
const moves = serializer();
// This process's own cgroups, where every move here goes back to: read once per run, and under the
// moves lock, so never while another run has the process moved.
const ownKey = runKey<Promise<Map<string, string>>>("own cgroups");

/**
 * Run `start` (which forks the process) with this process moved into `cgroups`, then move back:
 * the child starts in them. Serialized, since the whole process moves. Writing "0" to cgroup.procs
 * moves the writer's own process.
 */
export function startInCgroups<T>(
  ctx: RunContext,
  cgroups: readonly string[],
  start: () => Promise<T>,
  /** Run once the cgroups are made, before anything moves into them (their limits). */
  setup?: () => Promise<void>,
): Promise<T> {
  const { host } = ctx;
  // Only the moves and the fork are serialized: with many containers starting at once, everything
  // else here waits its turn behind the others' file operations (10 containers: 1.7 s for the last).
  const prepared = (async () => {
    for (const cg of cgroups) await host.fs.mkdir(cg, 0o755);
    await setup?.();
  })();
  const run = async () => {
    await prepared;
    const own = await ctx.memo(ownKey, () => cgroupsOf(host, "self"));
    try {
      for (const cg of cgroups) await host.fs.appendFile(`${cg}/cgroup.procs`, "0\n");
      return await start();
    } finally {
      for (const cg of cgroups) {
        const back = [...own].find(([mp]) => cg === mp || cg.startsWith(`${mp}/`))?.[1];
        if (back) await host.fs.appendFile(`${back}/cgroup.procs`, "0\n");
      }
    }
  };
  return moves(run);
}

/** Every cgroup directory under (and including) `dir`, deepest first; none when it does not exist. */
export async function cgroupTree(host: Host, dir: string): Promise<string[]> {
  if (!(await host.fs.stat(dir))?.isDirectory) return [];
  const out: string[] = [];
  for (const n of await host.fs.readdir(dir)) {
    const sub = `${dir}/${n}`;
    if ((await host.fs.stat(sub))?.isDirectory) out.push(...(await cgroupTree(host, sub)));
  }
  out.push(dir);
  return out;
}
