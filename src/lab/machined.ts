// systemd-machined, where it answers: whether to register containers with it, what it says of a
// container, and ending a registered container whose systemd-nspawn is gone. Registered containers
// run in a transient scope unit of their own (machine.slice), not in the cgroup of whatever ran
// `run up`: a lab outlives the process, service, timer or login session that started it.
import type { HostContext } from "../host/host.js";
import { poll } from "../host/poll.js";
import { isAlive } from "../host/proc.js";
import { type RunContext, runKey } from "../host/run-scope.js";
import type { Limits } from "./limits.js";

const answersKey = runKey<Promise<boolean>>("machined answers");

/**
 * Whether systemd-machined answers on the system bus (asked once per run). systemd as PID 1 alone
 * is not enough: machined may be masked, or the bus down; then containers run unregistered.
 */
export function machinedAnswers(ctx: RunContext): Promise<boolean> {
  return ctx.memo(answersKey, async () => {
    const { host } = ctx;
    if (!(await host.fs.exists("/run/systemd/system"))) return false;
    const r = await host
      .exec("machinectl", ["list", "--no-legend", "--no-pager"], {
        allowFail: true,
        readOnly: true,
        timeoutMs: 15_000,
      })
      .catch(() => undefined);
    return r?.exitCode === 0;
  });
}

/** The transient scope a registered container runs in (systemd-nspawn --keep-unit registers it). */
export const scopeOf = (name: string) => `aplspawn-${name}.scope`;

/**
 * argv that runs systemd-nspawn in the container's own scope, in machine.slice, with its cgroup
 * delegated (as systemd-nspawn@.service has it). `systemd-run --scope` execs the command itself: the
 * PID it starts with becomes the nspawn process.
 */
export function inScope(name: string, nspawnArgv: readonly string[], l: Limits = {}): string[] {
  return [
    "--scope",
    "--quiet",
    `--unit=${scopeOf(name)}`,
    "--slice=machine.slice",
    "--property=Delegate=yes",
    // The container's limits (src/lab/limits.ts does it where systemd does not manage cgroups).
    ...(l.memory === undefined ? [] : [`--property=MemoryMax=${l.memory}`, "--property=MemorySwapMax=0"]),
    ...(l.cpus === undefined ? [] : [`--property=CPUQuota=${Math.round(l.cpus * 100)}%`]),
    "--collect",
    `--description=aplspawn container ${name}`,
    "--",
    "systemd-nspawn",
    ...nspawnArgv,
  ];
}

/** What machined says of a registered machine. */
export interface Machine {
  name: string;
  leader: number;
  unit: string;
  root: string;
}

/** The registered machine of that name, or undefined (none, or machined does not answer). */
export async function machineOf(ctx: HostContext, name: string): Promise<Machine | undefined> {
  const r = await ctx.host.exec(
    "machinectl",
    ["show", name, "--property=Leader", "--property=Unit", "--property=RootDirectory", "--no-pager"],
    { allowFail: true, readOnly: true, signal: ctx.signal },
  );
  if (r.exitCode !== 0) return undefined;
  const v = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) v.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return {
    name,
    leader: Number(v.get("Leader") ?? 0),
    unit: v.get("Unit") ?? "",
    root: v.get("RootDirectory") ?? "",
  };
}

/**
 * End a registered container whose systemd-nspawn is gone (killed by the OOM killer, a crash, a
 * SIGKILL): its init lives on in its scope, still registered, its veth on the bridge. Only the
 * machine of that name running from `root` is ended, never another one: a machine of the same name
 * with another root directory is an error. First a clean poweroff (SIGRTMIN+4 to its init, as
 * nspawn does on SIGTERM), then machined terminates its unit, then SIGKILL to all of it.
 * Returns whether there was one to end.
 */
export async function endOrphanMachine(
  ctx: HostContext & { info?: (msg: string) => void },
  name: string,
  root: string,
  stopTimeoutMs: number,
): Promise<boolean> {
  const m = await machineOf(ctx, name);
  if (!m) return false;
  if (m.root !== root)
    throw new Error(
      `a machine named ${name} is registered with systemd-machined from ${m.root || "an unknown root"}, not from this lab's ${root}; it is not this lab's (machinectl status ${name})`,
    );
  const gone = (ms: number) =>
    poll(ctx.host, { timeoutMs: ms, everyMs: 100, signal: ctx.signal }, async () =>
      !(await machineOf(ctx, name)) && !(m.leader > 0 && (await isAlive(ctx.host, m.leader)))
        ? true
        : undefined,
    );
  const machinectl = (args: string[]) =>
    ctx.host.exec("machinectl", [...args, name], { allowFail: true, signal: ctx.signal });
  ctx.info?.(`container ${name} is registered, its systemd-nspawn gone: ending it (${m.unit})`);
  await machinectl(["poweroff"]);
  if (await gone(stopTimeoutMs)) return true;
  await machinectl(["terminate"]);
  if (await gone(10_000)) return true;
  await machinectl(["kill", "--kill-whom=all", "--signal=SIGKILL"]);
  if (await gone(10_000)) return true;
  throw new Error(
    `container ${name} (unit ${m.unit}, leader PID ${m.leader}) survives machinectl terminate and SIGKILL`,
  );
}

/**
 * Kill what is left in a container's scope that machined does not know (its nspawn died before it
 * registered the machine): the scope's name is this container's, and systemd-run would refuse to
 * make it again. Returns whether there was one.
 */
export async function endOrphanScope(ctx: HostContext, name: string): Promise<boolean> {
  const unit = scopeOf(name);
  if (!(await scopeActive(ctx, unit))) return false;
  await ctx.host.exec("systemctl", ["kill", "--signal=SIGKILL", unit], {
    allowFail: true,
    signal: ctx.signal,
  });
  const opts = { timeoutMs: 10_000, everyMs: 100, signal: ctx.signal };
  if (!(await poll(ctx.host, opts, async () => ((await scopeActive(ctx, unit)) ? undefined : true))))
    throw new Error(`the scope ${unit} of container ${name} survives SIGKILL`);
  return true;
}

async function scopeActive(ctx: HostContext, unit: string): Promise<boolean> {
  const r = await ctx.host.exec("systemctl", ["show", unit, "--property=ActiveState", "--value"], {
    allowFail: true,
    readOnly: true,
    signal: ctx.signal,
  });
  return r.exitCode === 0 && ["active", "activating", "deactivating"].includes(r.stdout.trim());
}
