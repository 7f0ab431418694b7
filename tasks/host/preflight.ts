// Preflight, the first task of `run up` and `run spawn`: what must hold on the host before anything
// is changed. It changes nothing itself (no rollback): when a check fails, "run" reports every
// problem at once, with the apt-get line that installs what is missing.
import type { HostContext } from "../../src/host/host.js";
import { missingPrograms } from "../../src/host/programs.js";
import { notPrivate, replaceableBy } from "../../src/host/trusted-path.js";
import { overlappingRoutes } from "../../src/net/routes.js";
import { defineGuard, unmet } from "../../src/runner/task.js";

/** Parameters. */
export interface PreflightParams {
  /** What the workflow runs on the host (src/host/programs.ts programsFor). */
  programs: string[];
  /** A bridge that must already exist (spawn runs without netup). */
  bridge?: string;
  /** containers.machinesDir: the merged roots, with the containers' setuid files, are under it. */
  machinesDir?: string;
  /** network.address and the lab's bridge: no route on another interface may overlap the subnet. */
  subnet?: { address: string; bridge: string };
}

// Asked of ip, not /sys: sysfs shows the network namespace that mounted it, not ours.
async function isBridge(ctx: HostContext, name: string): Promise<boolean> {
  const r = await ctx.host.exec("ip", ["-d", "-j", "link", "show", "dev", name], {
    allowFail: true,
    readOnly: true,
    signal: ctx.signal,
  });
  if (r.exitCode !== 0) return false;
  const links = JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string } }[];
  return links[0]?.linkinfo?.info_kind === "bridge";
}

/** Every problem found, empty when the host is ready. */
async function preflightProblems(ctx: HostContext, p: PreflightParams): Promise<string[]> {
  const h = ctx.host;
  const problems: string[] = [];
  if (h.uid() !== 0) problems.push("aplspawn must run as root (mounts, bridges, systemd-nspawn)");
  const missing = await missingPrograms(h, p.programs);
  if (missing) problems.push(missing);
  const fs = await h.fs.readFile("/proc/filesystems").catch(() => "");
  if (!fs.split("\n").some((l) => l.split("\t").pop() === "overlay"))
    problems.push("the kernel has no overlayfs: load it with `modprobe overlay`");
  if (p.machinesDir) {
    const d = p.machinesDir;
    const why = (await notPrivate(h, d)) ?? (await replaceableBy(h, d));
    if (why)
      problems.push(
        `containers.machinesDir ${d}: ${why}; the containers' roots (and their setuid files) would be within other users' reach: make it root's alone (chown root:root ${d} && chmod 700 ${d}) or choose another`,
      );
  }
  if (p.subnet) {
    const routes = await overlappingRoutes(ctx, p.subnet);
    if (routes.length > 0)
      problems.push(
        `network.address ${p.subnet.address} overlaps what the host already routes elsewhere: ${routes.join("; ")}; choose another subnet`,
      );
  }
  if (p.bridge && !(await isBridge(ctx, p.bridge)))
    problems.push(`bridge ${p.bridge} does not exist: run \`aplspawn run netup\` first`);
  return problems;
}

/** Checks root, programs, overlayfs (and the bridge, for spawn). */
export const hostPreflight = defineGuard<PreflightParams>({
  kind: "host.preflight",
  title: () => "Executing prechecks: root, required programs, overlayfs",
  async check(ctx, p) {
    const problems = await preflightProblems(ctx, p);
    return problems.length === 0 || unmet(`the host is not ready:\n  - ${problems.join("\n  - ")}`);
  },
});
