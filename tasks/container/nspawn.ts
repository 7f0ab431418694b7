// The container itself: systemd-nspawn started detached (its own session: it outlives the CLI and
// never gets its Ctrl-C), on the lab's bridge, logging to a file in the lab. Where systemd-machined
// answers, the machine is registered (`machinectl status NAME` works) from a scope unit of its own
// (src/lab/machined.ts), so it outlives the unit or session that ran `run up`; elsewhere
// `--register=no --keep-unit`, from cgroups of its own. The nspawn and leader PIDs are journaled.
// Stopping: SIGTERM (a booted container powers off cleanly), SIGKILL after a timeout; a registered
// container whose nspawn was killed is ended through machined.

import { z } from "zod";
import { readOr } from "../../src/host/files.js";
import { lastLines } from "../../src/host/host.js";
import { poll } from "../../src/host/poll.js";
import { childrenOf, cmdline, isAlive, procStat } from "../../src/host/proc.js";
import type { RunContext } from "../../src/host/run-scope.js";
import { bindArg, bindHostProblem } from "../../src/lab/binds.js";
import { cgroupTree, containerCgroups, startInCgroups } from "../../src/lab/cgroups.js";
import { idShiftOf, RANGE } from "../../src/lab/id-ranges.js";
import { applyLimits, limitCgroups } from "../../src/lab/limits.js";
import { endOrphanMachine, endOrphanScope, inScope, machinedAnswers } from "../../src/lab/machined.js";
import {
  findNspawn,
  isNspawnArgv,
  knowNspawn,
  type NspawnParams,
  type NspawnProcess,
  type NspawnResult,
  nspawnParamsSchema,
  nspawnResultSchema,
  recordedNspawn,
} from "../../src/lab/nspawn-procs.js";
import { linkInfo } from "../../src/net/links.js";
import { printable } from "../../src/runner/report.js";
import { defineTask, met, type TaskContext, unmet } from "../../src/runner/task.js";
import { STARTUP_SCRIPT } from "./network.js";

/** What prepare found: whether machined answers, and else the container's own cgroups (journaled before start). */
const nspawnIntentSchema = z.object({ registered: z.boolean(), cgroups: z.array(z.string()) });

/**
 * The argv of systemd-nspawn for a container; idBase: the host id of its root when it runs in a user
 * namespace (its files already carry the range's ids: ownership is left as it is).
 */
export function nspawnArgs(p: NspawnParams, registered: boolean, idBase = 0): string[] {
  return [
    `--machine=${p.name}`,
    `--directory=${p.merged}`,
    `--network-bridge=${p.bridge}`,
    // auto would bind the container's journal into the host's /var/log/journal: a residue.
    "--link-journal=no",
    ...(idBase > 0 ? [`--private-users=${idBase}:${RANGE}`, "--private-users-ownership=off"] : []),
    // Registered, the machine's unit is the scope nspawn runs in (src/lab/machined.ts).
    ...(registered ? [] : ["--register=no"]),
    "--keep-unit",
    ...(p.binds ?? []).map(bindArg),
    ...(p.init === "boot" ? ["--boot"] : [STARTUP_SCRIPT]),
  ];
}

/** The end of a container's log, for error messages. */
export async function logTail(ctx: TaskContext, logFile: string, lines = 15): Promise<string> {
  const t = lastLines(printable(await readOr(ctx.host, logFile, "(no log)")), lines);
  return `last lines of ${logFile}:\n${t
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n")}`;
}

const running = async (ctx: RunContext, p: NspawnParams) =>
  (await findNspawn(ctx, p.name, p.merged)).filter((n) => n.leader !== undefined);

/** Starts the container. */
export const containerNspawn = defineTask({
  kind: "container.nspawn",
  title: (p) =>
    `Starting container ${p.name} (${p.init === "boot" ? "systemd-nspawn --boot" : STARTUP_SCRIPT})`,
  rollbackTitle: (p) => `Stopping container ${p.name}`,
  status: (p) => ({ name: `Checking nspawn process for container ${p.name}`, target: p.name }),
  journaled: { params: nspawnParamsSchema, intent: nspawnIntentSchema, result: nspawnResultSchema },
  async check(ctx, p) {
    const n = (await running(ctx, p))[0];
    return n ? met(`nspawn PID ${n.pid}`) : unmet(`no systemd-nspawn process runs ${p.name}`);
  },
  async prepare(ctx, p) {
    // Where machined answers, the machine is registered, in a scope of its own.
    const registered = await machinedAnswers(ctx);
    if (registered) return { registered, cgroups: [] };
    const limits = p.limits ? (await limitCgroups(ctx.host, p.name, p.limits)).map((l) => l.dir) : [];
    return { registered, cgroups: [...new Set([...(await containerCgroups(ctx.host, p.name)), ...limits])] };
  },
  async run(ctx, p, intent) {
    const h = ctx.host;
    const stale = await findNspawn(ctx, p.name, p.merged);
    if (stale.length > 0)
      throw new Error(
        `systemd-nspawn for ${p.name} (PID ${stale[0]?.pid}) runs without a container; stop it first`,
      );
    const { registered } = intent;
    // The host paths as they are now, right before the mount (validate saw them earlier).
    const checked = new Map<string, string | undefined>();
    for (const b of p.binds ?? []) {
      const problem = await bindHostProblem(h, b, p.bindOwners ?? [0]);
      if (problem) throw new Error(`cannot bind ${b.host} into ${p.name}: ${problem}`);
      const st = await h.fs.stat(b.host);
      checked.set(b.container, st && `${st.devId}/${st.inoId}`);
    }
    // A registered container whose nspawn was killed lives on in its scope: end it, then start anew.
    if (registered) await endOrphans(ctx, p);
    const { logMaxBytes, midLine } = await rotateLog(ctx, p);
    // On a line of its own, also after a container killed in the middle of one.
    const marker = `--- aplspawn: starting ${p.name} at ${new Date().toISOString()}\n`;
    await h.fs.appendFile(p.logFile, midLine ? `\n${marker}` : marker);
    const idBase = await idShiftOf(h, p.merged);
    const argv = nspawnArgs(p, registered, idBase);
    const out = { logFile: p.logFile, logMaxBytes };
    const pid = registered
      ? await h.spawnDetached("systemd-run", inScope(p.name, argv, p.limits), out)
      : await startInCgroups(
          ctx,
          intent.cgroups,
          () => h.spawnDetached("systemd-nspawn", argv, out),
          async () => {
            if (p.limits) await applyLimits(h, await limitCgroups(h, p.name, p.limits));
          },
        );
    // A dry run's host starts nothing (PID 0): there is no leader to wait for.
    if (pid <= 0) return { pid, start: 0, leader: 0, registered };
    const start = (await procStat(h, pid))?.start ?? 0;
    knowNspawn(ctx, p.name, p.merged, { pid, start });
    // The leader is nspawn's child once it has exec'd the container's init (before, it is a fork of nspawn).
    const startTimeoutMs = p.startTimeoutMs ?? 60_000;
    const leader = await poll(h, { timeoutMs: startTimeoutMs, everyMs: 50, signal: ctx.signal }, async () => {
      if (!(await isAlive(h, pid)))
        throw new Error(`systemd-nspawn for ${p.name} exited at once; ${await logTail(ctx, p.logFile)}`);
      // systemd-run execs systemd-nspawn once the scope is made: until then, not a child is the leader.
      const own = await cmdline(h, pid);
      if (!own || !isNspawnArgv(own)) return undefined;
      for (const child of await childrenOf(h, pid)) {
        const argv = await cmdline(h, child);
        if (argv && argv.join("\0") !== own.join("\0")) return child;
      }
      return undefined;
    });
    if (leader !== undefined) {
      // What nspawn bound is what was checked: a path swapped for a link since is caught here (the
      // run fails and its rollback stops the container).
      for (const [at, id] of checked) {
        const st = await h.fs.stat(`/proc/${leader}/root${at}`);
        if (!st || `${st.devId}/${st.inoId}` !== id)
          throw new Error(`${p.name}: what is bound at ${at} is not the host path checked before the start`);
      }
      return { pid, start, leader, registered };
    }
    throw new Error(
      `container ${p.name} did not start its init within ${startTimeoutMs / 1000} s; ${await logTail(ctx, p.logFile)}`,
    );
  },
  async rollback(ctx, { params: p, intent, result }) {
    const lock = await inodeLock(ctx, p.merged);
    await stopContainer(ctx, p, result);
    if (intent?.registered || result?.registered) await endOrphans(ctx, p);
    for (const cg of intent?.cgroups ?? []) await removeCgroup(ctx, cg);
    // What nspawn removes when it exits normally, left when it had to be killed.
    if ((await findNspawn(ctx, p.name, p.merged)).length === 0) {
      const slash = p.merged.lastIndexOf("/");
      await ctx.host.fs.rm(`${p.merged.slice(0, slash)}/.#${p.merged.slice(slash + 1)}.lck`);
      await ctx.host.fs.rm(`/run/systemd/nspawn/propagate/${p.name}`);
      if (lock) await ctx.host.fs.rm(lock);
    }
  },
});

// A log of half the bound or more moves to nspawn.log.1 (the one there before goes) and this start
// gets the whole bound; a smaller one gets what is left of it. Says how many bytes this start may
// add, and whether the log goes on from the middle of a line.
async function rotateLog(
  ctx: TaskContext,
  p: NspawnParams,
): Promise<{ logMaxBytes?: number; midLine: boolean }> {
  const h = ctx.host;
  const size = (await h.fs.stat(p.logFile))?.size ?? 0;
  const max = p.logMaxBytes;
  if (max !== undefined && size >= max / 2) {
    await h.fs.rename(p.logFile, `${p.logFile}.1`);
    return { logMaxBytes: max, midLine: false };
  }
  const midLine = size > 0 && (await h.fs.readBytes(p.logFile, size - 1, 1)).toString() !== "\n";
  return { logMaxBytes: max === undefined ? undefined : max - size, midLine };
}

// What a registered container whose nspawn is gone leaves: its machine (init and all, in its
// scope), or, had nspawn died before registering it, the scope alone.
// nspawn removes its veth when it exits; killed, it leaves it on the bridge until the kernel gets
// round to freeing the container's network namespace: removed here once nothing of it runs.
async function endOrphans(ctx: TaskContext, p: NspawnParams): Promise<void> {
  if ((await findNspawn(ctx, p.name, p.merged)).length > 0) return;
  const ended =
    (await endOrphanMachine(ctx, p.name, p.merged, p.stopTimeoutMs)) || (await endOrphanScope(ctx, p.name));
  if (!ended) return;
  // nspawn names it vb-NAME, or, shortened to fit 15 characters, gives it that altname.
  const veth = await linkInfo(ctx, `vb-${p.name}`);
  if (veth?.kind === "veth" && veth.master === p.bridge)
    await ctx.host.exec("ip", ["link", "del", "dev", veth.name], { allowFail: true, signal: ctx.signal });
}

// nspawn's lock on the root directory it runs, named after that directory's device and inode.
async function inodeLock(ctx: TaskContext, dir: string): Promise<string | undefined> {
  const s = await ctx.host.fs.stat(dir);
  return s ? `/run/systemd/nspawn/locks/inode-${s.dev}:${s.ino}` : undefined;
}

async function stopContainer(
  ctx: TaskContext,
  p: NspawnParams,
  result: NspawnResult | undefined,
): Promise<void> {
  const h = ctx.host;
  const found = new Map<number, NspawnProcess>();
  if (result) {
    const r = await recordedNspawn(ctx, result, p.name, p.merged);
    if (r) found.set(r.pid, r);
  }
  // Also what the live host shows (a crash may have left no result).
  for (const n of await findNspawn(ctx, p.name, p.merged)) found.set(n.pid, n);
  if (found.size === 0) return;
  const procs = [...found.values()];
  // nspawn turns each SIGTERM into a poweroff request to the container's init, which an init still
  // starting up ignores (PID 1 has no default actions): ask again until it is heard.
  const askAgain = () => {
    for (const n of procs) h.kill(n.pid, "SIGTERM");
  };
  askAgain();
  if (await waitGone(ctx, procs, p.stopTimeoutMs, askAgain)) return;
  ctx.info(`container ${p.name} did not power off within ${p.stopTimeoutMs / 1000} s: killing it`);
  for (const n of procs) {
    if (n.leader) h.kill(n.leader, "SIGKILL");
    h.kill(n.pid, "SIGKILL");
  }
  if (!(await waitGone(ctx, procs, 10_000)))
    throw new Error(
      `container ${p.name} (nspawn PID ${procs.map((n) => n.pid).join(", ")}) survives SIGKILL`,
    );
}

// Remove the container's cgroup tree, deepest first; a process still in it is killed first
// (none should be: the container is stopped), and a cgroup that empties late is retried.
async function removeCgroup(ctx: TaskContext, cg: string): Promise<void> {
  const h = ctx.host;
  let busy = "";
  const removed = await poll(h, { timeoutMs: 5_000, everyMs: 250 }, async () => {
    const tree = await cgroupTree(h, cg);
    busy = "";
    for (const dir of tree) {
      for (const pid of (await readOr(h, `${dir}/cgroup.procs`)).split("\n").filter(Boolean))
        h.kill(Number(pid), "SIGKILL");
      // fs.rmdir, not the rmdir command: 50 containers have some 500 cgroups, and a process
      // start costs Node 10-15 ms of its main thread (5-7 s of a 50-container down).
      const err = await h.fs.rmdir(dir).then(
        () => undefined,
        (e: Error) => e.message,
      );
      if (err !== undefined && (await h.fs.exists(dir))) busy = `${dir}: ${err}`;
    }
    return busy ? undefined : true;
  });
  if (!removed) throw new Error(`cannot remove the cgroup of container: ${busy}`);
  // The shared parent goes with the last container.
  await h.fs.rmdir(cg.slice(0, cg.lastIndexOf("/"))).catch(() => undefined);
}

async function waitGone(
  ctx: TaskContext,
  procs: NspawnProcess[],
  ms: number,
  every2s?: () => void,
): Promise<boolean> {
  const gone = await poll(ctx.host, { timeoutMs: ms, everyMs: 100 }, async (i) => {
    if (every2s && i % 20 === 0) every2s();
    for (const n of procs)
      if ((await isAlive(ctx.host, n.pid)) || (n.leader && (await isAlive(ctx.host, n.leader))))
        return undefined;
    return true;
  });
  return gone === true;
}
