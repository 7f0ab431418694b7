// The systemd-nspawn processes of aplspawn's containers, as /proc shows them: which are real (not a
// forgery named like one), what each runs and who its container's leader is. Without machined,
// this is how aplspawn finds its containers. Also the shapes of the container.nspawn journal
// entry, which both its task and the lab's readers (src/lab/state.ts) go by.
import { z } from "zod";
import type { Host } from "../host/host.js";
import { allPids, childrenOf, cmdline, procStat } from "../host/proc.js";
import { type RunContext, runKey } from "../host/run-scope.js";
import { freshLook, type Looks } from "../host/shared-look.js";

/** The journaled parameters of a container's systemd-nspawn (the kind container.nspawn). */
export const nspawnParamsSchema = z.object({
  name: z.string(),
  merged: z.string(),
  logFile: z.string(),
  bridge: z.string(),
  init: z.enum(["boot", "script"]),
  /** How long a container gets to power off after SIGTERM before SIGKILL. */
  stopTimeoutMs: z.number(),
  /**
   * How long nspawn gets to start the container's init (the config's readyTimeout; 60 s in
   * journals written before it was a parameter). With 50 containers booting on two cores, one
   * nspawn took 62 s to get there.
   */
  startTimeoutMs: z.number().optional(),
  /** containers.consoleLogMax (absent in journals written before it: unbounded). */
  logMaxBytes: z.number().int().positive().optional(),
  /** Host paths bound into it (config/binds.ts), and the uids their host paths may belong to. */
  binds: z.array(z.object({ host: z.string(), container: z.string(), readOnly: z.boolean() })).optional(),
  bindOwners: z.array(z.number().int()).optional(),
  /** Its cgroup's limits: memory in bytes, cpus (src/lab/limits.ts). */
  limits: z.object({ memory: z.number().int().optional(), cpus: z.number().optional() }).optional(),
});
export type NspawnParams = z.infer<typeof nspawnParamsSchema>;

/** What starting it recorded (journaled): enough to find (and not mistake) the very process later. */
export const nspawnResultSchema = z.object({
  pid: z.number().int(),
  /** Start time in clock ticks: a reused PID has another one. */
  start: z.number().int(),
  leader: z.number().int(),
  registered: z.boolean(),
});
export type NspawnResult = z.infer<typeof nspawnResultSchema>;

/**
 * The PIDs whose process name is systemd-nspawn, by one `pgrep` (reading the cmdline of every
 * process took most of a second with 50 containers' processes); every PID where pgrep is missing.
 */
async function nspawnPids(host: Host): Promise<number[]> {
  const r = await host
    .exec("pgrep", ["-x", "systemd-nspawn"], { allowFail: true, readOnly: true })
    .catch(() => undefined);
  // 0: some found, 1: none; anything else (or no pgrep at all): walk /proc instead.
  if (r?.exitCode === 1) return [];
  if (r?.exitCode !== 0) return allPids(host);
  return r.stdout
    .split("\n")
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

// What a real systemd-nspawn of ours is: the host's systemd-nspawn binary (the very inode; after a
// package upgrade, the same path marked deleted), run by root, in our PID namespace. A name and an
// argv are anyone's to forge: a process in a container (its own PID namespace, its own binary) or
// another local user's (not root) can call itself systemd-nspawn with a matching argv.
interface NspawnBinary {
  path: string;
  dev: number;
  ino: number;
  pidNs: number;
}
// Looked up once per run.
const binaryKey = runKey<Promise<NspawnBinary | undefined>>("systemd-nspawn binary");
function nspawnBinary({ host, memo }: RunContext): Promise<NspawnBinary | undefined> {
  return memo(binaryKey, async () => {
    const which = await host.which("systemd-nspawn");
    if (!which) return undefined;
    const path = await host.fs.realpath(which);
    const [st, ns] = [await host.fs.stat(path), await host.fs.stat("/proc/self/ns/pid")];
    return st && ns ? { path, dev: st.dev, ino: st.ino, pidNs: ns.ino } : undefined;
  });
}

/** Whether PID is the host's systemd-nspawn binary, run by root in our PID namespace. */
async function isRealNspawn(ctx: RunContext, pid: number): Promise<boolean> {
  const { host } = ctx;
  const bin = await nspawnBinary(ctx);
  if (!bin) return false;
  const status = await host.fs.readFile(`/proc/${pid}/status`).catch(() => "");
  if (/^Uid:\s+(\d+)/m.exec(status)?.[1] !== "0") return false;
  if ((await host.fs.stat(`/proc/${pid}/ns/pid`))?.ino !== bin.pidNs) return false;
  const exe = await host.fs.stat(`/proc/${pid}/exe`);
  if (exe && exe.dev === bin.dev && exe.ino === bin.ino) return true;
  return (await host.fs.readlink(`/proc/${pid}/exe`).catch(() => "")) === `${bin.path} (deleted)`;
}

/** A systemd-nspawn process aplspawn started, with its container's leader (PID 1 inside). */
export interface NspawnProcess {
  pid: number;
  start: number;
  leader: number | undefined;
  argv: string[];
}

/** Whether argv is systemd-nspawn's. */
export const isNspawnArgv = (argv: readonly string[]) =>
  (argv[0] ?? "").split("/").pop() === "systemd-nspawn";

/** Whether argv is systemd-nspawn running the container `machine` from `dir`. */
export function isNspawnFor(argv: readonly string[], machine: string, dir: string): boolean {
  return isNspawnArgv(argv) && argv.includes(`--machine=${machine}`) && argv.includes(`--directory=${dir}`);
}

/** The live systemd-nspawn processes of container `machine` on `dir` (normally zero or one). */
export async function findNspawn(ctx: RunContext, machine: string, dir: string): Promise<NspawnProcess[]> {
  const found = await findNspawnWhere(ctx, (argv) => isNspawnFor(argv, machine, dir));
  if (found.length === 1) knowNspawn(ctx, machine, dir, found[0]!);
  return found;
}

// The container's nspawn this run started or found, by PID and start time: the run's later steps
// check that very process through its own /proc entries (recordedNspawn) rather than scan every
// process again. Gone or replaced (another start time), it is looked for anew.
const knownKey = runKey<Map<string, { pid: number; start: number }>>("systemd-nspawn processes known");
const knownName = (machine: string, dir: string) => `${machine}\0${dir}`;

/** Remember the container's nspawn for the rest of the run (its start, or a scan that found it). */
export function knowNspawn(ctx: RunContext, machine: string, dir: string, n: { pid: number; start: number }) {
  if (n.pid > 0)
    ctx.memo(knownKey, () => new Map()).set(knownName(machine, dir), { pid: n.pid, start: n.start });
}

/**
 * The live systemd-nspawn of container `machine` on `dir`: the one the run knows when it still
 * runs (no scan), else the first a scan finds.
 */
export async function theNspawn(
  ctx: RunContext,
  machine: string,
  dir: string,
): Promise<NspawnProcess | undefined> {
  const known = ctx.memo(knownKey, () => new Map()).get(knownName(machine, dir));
  return (
    (known && (await recordedNspawn(ctx, known, machine, dir))) ?? (await findNspawn(ctx, machine, dir))[0]
  );
}

// Many containers' checks scan /proc at once: they share scans (src/host/shared-look.ts).
type Scan = Map<number, string[]>;
const scansKey = runKey<Looks<Scan>>("systemd-nspawn scans");
function nspawnArgvs(ctx: RunContext): Promise<Scan> {
  const { host } = ctx;
  return freshLook(
    ctx.memo(scansKey, () => ({})),
    async () => {
      const out: Scan = new Map();
      for (const pid of await nspawnPids(host)) {
        const argv = await cmdline(host, pid);
        if (argv && isNspawnArgv(argv) && (await isRealNspawn(ctx, pid))) out.set(pid, argv);
      }
      return out;
    },
  );
}

/** The live systemd-nspawn processes whose argv matches. */
export async function findNspawnWhere(
  ctx: RunContext,
  match: (argv: readonly string[]) => boolean,
): Promise<NspawnProcess[]> {
  const { host } = ctx;
  const out: NspawnProcess[] = [];
  for (const [pid, argv] of await nspawnArgvs(ctx)) {
    if (!match(argv)) continue;
    const st = await procStat(host, pid);
    if (!st || st.state === "Z") continue;
    out.push({ pid, start: st.start, leader: (await childrenOf(host, pid))[0], argv });
  }
  return out;
}

/** The nspawn process recorded in the journal, if that very process (same start time) still runs. */
export async function recordedNspawn(
  ctx: RunContext,
  rec: { pid: number; start: number },
  machine: string,
  dir: string,
): Promise<NspawnProcess | undefined> {
  const { host } = ctx;
  const st = await procStat(host, rec.pid);
  if (!st || st.state === "Z" || st.start !== rec.start) return undefined;
  const argv = await cmdline(host, rec.pid);
  if (!argv || !isNspawnFor(argv, machine, dir) || !(await isRealNspawn(ctx, rec.pid))) return undefined;
  return { pid: rec.pid, start: st.start, leader: (await childrenOf(host, rec.pid))[0], argv };
}
