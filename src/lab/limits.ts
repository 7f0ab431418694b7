// A container's memory and CPU limits on its own cgroups, where no systemd manages cgroups (with
// systemd, its scope unit's MemoryMax= and CPUQuota= do it: src/lab/machined.ts). Per controller:
// a cgroup v1 hierarchy of that controller, else cgroup2 where the controller is available.
//   v1: <the cgroup aplspawn runs in>/aplspawn/<name> (nested: the limits of whatever runs aplspawn
//       stay above the container's), memory.limit_in_bytes (and memory.memsw.limit_in_bytes: no
//       swap beyond it), cpu.cfs_quota_us over cpu.cfs_period_us;
//   v2: <root>/aplspawn/<name>, the container's cgroup systemd-nspawn runs in (src/lab/cgroups.ts),
//       with the controllers enabled on the way, memory.max (memory.swap.max 0), cpu.max.
import type { Host } from "../host/host.js";
import { readMounts } from "../host/mounts.js";
import { cgroupsOf } from "./cgroups.js";

/** A container's limits: memory in bytes, cpus (1.5: one and a half CPUs' time). */
export interface Limits {
  memory?: number;
  cpus?: number;
}

const PERIOD_US = 100_000;
const quota = (cpus: number) => Math.max(1000, Math.round(cpus * PERIOD_US));

/** One cgroup carrying limits: its directory, the controllers to enable above it (v2), the files to write. */
export interface LimitCgroup {
  dir: string;
  enable: { at: string[]; controller: string } | undefined;
  files: [string, string][];
}

/** Where and how a container's limits go on this host; an error when a controller is missing. */
export async function limitCgroups(host: Host, name: string, l: Limits): Promise<LimitCgroup[]> {
  const ms = await readMounts(host);
  const own = await cgroupsOf(host, "self");
  const out: LimitCgroup[] = [];
  const want = [
    ...(l.memory === undefined ? [] : [{ controller: "memory", v: l.memory }]),
    ...(l.cpus === undefined ? [] : [{ controller: "cpu", v: l.cpus }]),
  ];
  for (const { controller, v } of want) {
    const v1 = ms.find((m) => m.fstype === "cgroup" && m.superOptions.includes(controller));
    if (v1) {
      const dir = `${own.get(v1.mountPoint) ?? v1.mountPoint}/aplspawn/${name}`;
      const files: [string, string][] =
        controller === "memory"
          ? [
              ["memory.limit_in_bytes", String(v)],
              ["memory.memsw.limit_in_bytes", String(v)],
            ]
          : [
              ["cpu.cfs_period_us", String(PERIOD_US)],
              ["cpu.cfs_quota_us", String(quota(v))],
            ];
      out.push({ dir, enable: undefined, files });
      continue;
    }
    const v2 = ms.find((m) => m.fstype === "cgroup2");
    const available = v2 ? await host.fs.readFile(`${v2.mountPoint}/cgroup.controllers`).catch(() => "") : "";
    if (!v2 || !available.split(/\s+/).includes(controller))
      throw new Error(
        `the host offers no ${controller} cgroup controller (neither a cgroup v1 hierarchy nor cgroup2): containers.${controller === "cpu" ? "cpus" : "memory"} cannot be applied`,
      );
    const root = v2.mountPoint;
    out.push({
      dir: `${root}/aplspawn/${name}`,
      enable: { at: [root, `${root}/aplspawn`], controller },
      files:
        controller === "memory"
          ? [
              ["memory.max", String(v)],
              ["memory.swap.max", "0"],
            ]
          : [["cpu.max", `${quota(v)} ${PERIOD_US}`]],
    });
  }
  return out;
}

/** Make the cgroups and write their limits (a file the kernel lacks, e.g. memsw without swap accounting, is skipped). */
export async function applyLimits(host: Host, cgs: readonly LimitCgroup[]): Promise<void> {
  for (const cg of cgs) {
    await host.fs.mkdir(cg.dir, 0o755);
    for (const at of cg.enable?.at ?? []) {
      const on = await host.fs.readFile(`${at}/cgroup.subtree_control`).catch(() => "");
      if (!on.split(/\s+/).includes(cg.enable!.controller))
        await host.fs.appendFile(`${at}/cgroup.subtree_control`, `+${cg.enable!.controller}\n`);
    }
    for (const [f, v] of cg.files)
      if (await host.fs.exists(`${cg.dir}/${f}`)) await host.fs.appendFile(`${cg.dir}/${f}`, `${v}\n`);
      else if (!f.includes("swap") && !f.includes("memsw"))
        throw new Error(`${cg.dir}/${f} does not exist: the ${f.split(".")[0]} limit cannot be applied`);
  }
}

/**
 * The limits a process (a container's leader) runs under, read from its cgroups and every one above
 * them: the lowest found (a limit above the container's own, e.g. of a service aplspawn ran in, counts).
 */
export async function limitsOf(host: Host, pid: number): Promise<Limits> {
  const out: Limits = {};
  for (const [mp, dir] of await cgroupsOf(host, pid)) {
    for (let d = dir; d.length >= mp.length; d = d.slice(0, d.lastIndexOf("/"))) {
      const read = (f: string) =>
        host.fs.readFile(`${d}/${f}`).then(
          (t) => t.trim(),
          () => undefined,
        );
      const mem = (await read("memory.limit_in_bytes")) ?? (await read("memory.max"));
      // v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages).
      if (mem && mem !== "max" && Number(mem) < 2 ** 60)
        out.memory = Math.min(out.memory ?? Number.POSITIVE_INFINITY, Number(mem));
      const q = (await read("cpu.cfs_quota_us")) ?? (await read("cpu.max"))?.split(" ")[0];
      const period = Number((await read("cpu.cfs_period_us")) ?? (await read("cpu.max"))?.split(" ")[1]);
      if (q && q !== "max" && Number(q) > 0 && period > 0)
        out.cpus = Math.min(out.cpus ?? Number.POSITIVE_INFINITY, Number(q) / period);
      if (d === mp) break;
    }
  }
  return out;
}
