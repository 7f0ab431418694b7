// Capacity, part of the preflight of `run up`, `run spawn` and `run reset`: whether the host can hold
// the lab's containers that are not running yet, before anything is made. A lab that starts
// containers the host cannot hold does not fail cleanly: containers hang in early boot (inotify),
// fork fails inside them (pids) or the OOM killer picks a process of any lab (memory). So it is
// refused here, naming what runs out and by how much. It changes nothing (a guard: no rollback).
//
// What a booted container of the test image (Debian bookworm, systemd, sshd) takes, measured with
// `node bench/run.mjs --parts capacity` (docs/performance.md, "Many labs on one host"): 8 tasks
// (systemd-nspawn and the container's processes and threads), 8 inotify instances, and about 60 MiB
// charged to its memory cgroup, of which 9-10 MiB rss and shmem and 23 MiB mapped files (a lab of
// one container; a lab's containers share its image's page cache). The figures below cover that
// charge, with room for what a lab's own image and playbook add.
import type { HostContext } from "../../src/host/host.js";
import { readMounts } from "../../src/host/mounts.js";
import { formatBytes } from "../../src/image/progress.js";
import { defineGuard, unmet } from "../../src/runner/task.js";

/** Parameters. */
export interface CapacityParams {
  /** The lab's containers (those already running need nothing more). */
  names: string[];
  /** The lower directory of each image the lab attaches (one loop device each, unless attached). */
  lowers: string[];
  /** The inotify limit host.inotify holds: its minimum, and the value it writes below that. */
  inotify: { minimum: number; value: number };
}

const MiB = 1024 * 1024;
/** Memory per container not running yet: what a booted container is charged (about 60 MiB), rounded up. */
export const MEMORY_PER_CONTAINER = 64 * MiB;
/** Memory left for the host itself, aplspawn and Ansible. */
export const MEMORY_MARGIN = 256 * MiB;
/** Tasks (processes and threads) per container: 4× the 8 a booted container has. */
export const PIDS_PER_CONTAINER = 32;
/** Tasks left for the host (a login, a build beside the lab). */
export const PIDS_MARGIN = 512;
/**
 * inotify instances per container: twice the 8 a booted container holds. host.inotify raises the
 * limit by more (40 each, tasks/host/inotify.ts): raising costs nothing, refusing a lab does.
 */
export const INOTIFY_PER_CONTAINER = 16;

const NSPAWN_RUN = "/run/systemd/nspawn/propagate";

/** A number read from a file (`max` and absent files are undefined: no limit). */
async function readNumber(ctx: HostContext, path: string): Promise<number | undefined> {
  const t = await ctx.host.fs.readFile(path).catch(() => undefined);
  const n = Number(t?.trim().split(/\s+/)[0]);
  return t === undefined || !Number.isFinite(n) ? undefined : n;
}

/**
 * The cgroups the containers' processes will count against for a controller ("memory", "pids"),
 * with their limit and usage files: in cgroup v1 the controller's hierarchy has the cgroup aplspawn
 * runs in and its parents (aplspawn moves its containers in the systemd hierarchies only); in
 * cgroup v2 the containers' parent, <mount>/aplspawn.
 */
async function cgroupHeadroom(
  ctx: HostContext,
  controller: "memory" | "pids",
): Promise<{ headroom: number; where: string } | undefined> {
  const mounts = await readMounts(ctx.host);
  const own = await ctx.host.fs.readFile("/proc/self/cgroup").catch(() => "");
  const dirs: { dir: string; limit: string; usage: string }[] = [];
  const v1 = mounts.find((m) => m.fstype === "cgroup" && m.superOptions.includes(controller));
  const v1Path = own.split("\n").find((l) => l.split(":")[1]?.split(",").includes(controller));
  if (v1 && v1Path) {
    const parts = v1Path.split(":").slice(2).join(":").split("/").filter(Boolean);
    const [limit, usage] =
      controller === "memory"
        ? ["memory.limit_in_bytes", "memory.usage_in_bytes"]
        : ["pids.max", "pids.current"];
    for (let i = parts.length; i > 0; i--)
      dirs.push({ dir: `${v1.mountPoint}/${parts.slice(0, i).join("/")}`, limit, usage });
  }
  for (const m of mounts.filter((x) => x.fstype === "cgroup2"))
    dirs.push({
      dir: `${m.mountPoint}/aplspawn`,
      limit: `${controller}.max`,
      usage: `${controller}.current`,
    });
  let best: { headroom: number; where: string } | undefined;
  for (const d of dirs) {
    const limit = await readNumber(ctx, `${d.dir}/${d.limit}`);
    const usage = await readNumber(ctx, `${d.dir}/${d.usage}`);
    // cgroup v1 writes "no limit" as a page-rounded 2^63.
    if (limit === undefined || usage === undefined || limit >= 2 ** 62) continue;
    const headroom = limit - usage;
    if (!best || headroom < best.headroom) best = { headroom, where: `${d.dir}/${d.limit}` };
  }
  return best;
}

/** Inotify instances root holds now (every process's inotify descriptors; other users' are their own). */
async function inotifyInUse(ctx: HostContext): Promise<number> {
  const fs = ctx.host.fs;
  let n = 0;
  for (const pid of await fs.readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    if ((await fs.stat(`/proc/${pid}`).catch(() => undefined))?.uid !== 0) continue;
    for (const fd of await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]))
      if ((await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")) === "anon_inode:inotify") n++;
  }
  return n;
}

/** Loop devices no file is attached to (only asked when /dev/loop-control cannot make new ones). */
async function freeLoops(ctx: HostContext): Promise<number> {
  const fs = ctx.host.fs;
  let n = 0;
  for (const d of await fs.readdir("/dev").catch(() => [] as string[]))
    if (/^loop\d+$/.test(d) && !(await fs.exists(`/sys/block/${d}/loop/backing_file`))) n++;
  return n;
}

const mib = (b: number) => formatBytes(b);

/** Every way the host falls short of the lab, empty when it holds it. */
export async function capacityProblems(ctx: HostContext, p: CapacityParams): Promise<string[]> {
  const fs = ctx.host.fs;
  const problems: string[] = [];
  const running = new Set(await fs.readdir(NSPAWN_RUN).catch(() => [] as string[]));
  const starting = p.names.filter((n) => !running.has(n)).length;
  if (starting > 0) {
    const what = `${starting} container${starting === 1 ? "" : "s"}`;
    // Memory: what the kernel can give without swapping, and what a cgroup above the containers allows.
    const meminfo = await fs.readFile("/proc/meminfo").catch(() => "");
    const availKiB = Number(/^MemAvailable:\s+(\d+)/m.exec(meminfo)?.[1]);
    const needMem = starting * MEMORY_PER_CONTAINER + MEMORY_MARGIN;
    if (Number.isFinite(availKiB) && availKiB * 1024 < needMem)
      problems.push(
        `memory: ${what} need ${mib(needMem)} (${mib(MEMORY_PER_CONTAINER)} each and ${mib(MEMORY_MARGIN)} for the host), the host has ${mib(availKiB * 1024)} available (MemAvailable): ${mib(needMem - availKiB * 1024)} short; start fewer containers or free memory`,
      );
    const memCg = await cgroupHeadroom(ctx, "memory");
    if (memCg && memCg.headroom < needMem)
      problems.push(
        `memory: ${what} need ${mib(needMem)}, the cgroup limit ${memCg.where} leaves ${mib(Math.max(0, memCg.headroom))}: ${mib(needMem - Math.max(0, memCg.headroom))} short; start fewer containers or raise the limit`,
      );
    // Tasks: every process and thread takes a PID (kernel.pid_max) and counts against threads-max.
    const needPids = starting * PIDS_PER_CONTAINER + PIDS_MARGIN;
    const tasks = Number((await fs.readFile("/proc/loadavg").catch(() => "")).split(/\s+/)[3]?.split("/")[1]);
    for (const [key, path] of [
      ["kernel.pid_max", "/proc/sys/kernel/pid_max"],
      ["kernel.threads-max", "/proc/sys/kernel/threads-max"],
    ] as const) {
      const limit = await readNumber(ctx, path);
      if (limit !== undefined && Number.isFinite(tasks) && tasks + needPids > limit)
        problems.push(
          `pids: ${what} need ${needPids} tasks (${PIDS_PER_CONTAINER} each and ${PIDS_MARGIN} for the host), ${key} is ${limit} with ${tasks} in use: ${tasks + needPids - limit} short; start fewer containers or raise ${key} (sysctl -w ${key}=${tasks + needPids})`,
        );
    }
    const pidsCg = await cgroupHeadroom(ctx, "pids");
    if (pidsCg && pidsCg.headroom < needPids)
      problems.push(
        `pids: ${what} need ${needPids} tasks, the cgroup limit ${pidsCg.where} leaves ${Math.max(0, pidsCg.headroom)}: ${needPids - Math.max(0, pidsCg.headroom)} short; start fewer containers or raise the limit`,
      );
    // inotify: the limit host.inotify will hold, against root's instances in use (other labs' too).
    const cur = await readNumber(ctx, "/proc/sys/fs/inotify/max_user_instances");
    if (cur !== undefined) {
      const limit = cur >= p.inotify.minimum ? cur : p.inotify.value;
      const needIn = starting * INOTIFY_PER_CONTAINER;
      // Every inotify instance is an open file: while the host's open files (fs.file-nr) leave room,
      // so do its instances, and the scan of every process's descriptors (seconds on a busy host)
      // is spared.
      const open = Number((await fs.readFile("/proc/sys/fs/file-nr").catch(() => "")).split(/\s+/)[0]);
      const used = Number.isFinite(open) && open + needIn <= limit ? 0 : await inotifyInUse(ctx);
      if (used + needIn > limit)
        problems.push(
          `inotify: ${what} need ${needIn} instances (${INOTIFY_PER_CONTAINER} each), root holds ${used} of fs.inotify.max_user_instances ${limit}: ${used + needIn - limit} short (new containers would hang in early boot); raise it (sysctl -w fs.inotify.max_user_instances=${used + needIn}) or start fewer containers`,
        );
    }
  }
  // Loop devices: without /dev/loop-control no new device can be made; only free ones serve. One
  // for each image not attached yet, and one for each starting container's file system (container.disk).
  const attaching = [];
  for (const l of p.lowers) if (!(await fs.exists(`${l}.loop`))) attaching.push(l);
  const need = attaching.length + starting;
  if (need > 0 && !(await fs.exists("/dev/loop-control"))) {
    const free = await freeLoops(ctx);
    const what = [
      ...(attaching.length > 0 ? [`${attaching.length} image${attaching.length === 1 ? "" : "s"}`] : []),
      ...(starting > 0 ? [`${starting} container file system${starting === 1 ? "" : "s"}`] : []),
    ].join(" and ");
    if (free < need)
      problems.push(
        `loop devices: the lab attaches ${what}, /dev/loop-control is missing and ${free} loop device${free === 1 ? " is" : "s are"} free: ${need - free} short; load the loop module (modprobe loop) or detach unused devices (losetup -a)`,
      );
  }
  return problems;
}

/** Checks the host can hold the lab's containers that are not running yet. */
export const hostCapacity = defineGuard<CapacityParams>({
  kind: "host.capacity",
  title: (p) =>
    `Checking the host can hold ${p.names.length} container${p.names.length === 1 ? "" : "s"}: memory, pids, inotify, loop devices`,
  async check(ctx, p) {
    const problems = await capacityProblems(ctx, p);
    return (
      problems.length === 0 ||
      unmet(`the host cannot hold this lab, nothing was started:\n  - ${problems.join("\n  - ")}`)
    );
  },
});
