// Helpers of the fault, crash, interrupt and concurrency tests: the lab test each of them is (with
// its baseline and cleanup), the task list of a lab, one fault-injected run, a CLI run one can
// watch and kill midway, and the residue check every one of them ends with.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readdir, readFile, readlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { runContext } from "../../src/host/run-scope.js";
import { CLAIMS_DIR, withLoopClaims } from "../../src/image/loop-claims.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import type { SummaryEvent } from "../../src/runner/report.js";
import { runEvents, taskEvents } from "./json-events.js";
import {
  type ConfigOverrides,
  cgroupsOf,
  holdsUnder,
  inotify,
  type Lab,
  nspawnPids,
  propagateDirs,
  sameSnapshot,
  settled,
  withLab,
} from "./lab.js";
import { type NsResult, type NsSnapshot, skip } from "./ns.js";
import { waitFor } from "./wait.js";

/** The task ids `run up --list-tasks` prints for the lab's current config. */
export async function listTasks(lab: Lab): Promise<string[]> {
  const r = await lab.cli(["run", "up", "--list-tasks"]);
  assert.equal(r.exitCode, 0, r.stderr);
  const ids = r.stdout.split("\n").filter(Boolean);
  assert.ok(ids.length > 10, `too few task ids:\n${r.stdout}`);
  return ids;
}

/** A per-container task id split into kind and container name. */
export const containerTask = (id: string) => /^(container\.[\w.-]+)\[([^\]]+)\]$/.exec(id);

/**
 * The task ids of a lab, grouped: lab-level ids (network, image, lab), and per-container ids by kind
 * then by position (first, middle, last container in the order --list-tasks gives).
 */
export function classify(ids: string[]): {
  labLevel: string[];
  perContainer: { kind: string; position: "first" | "middle" | "last"; id: string }[];
  names: string[];
} {
  const names: string[] = [];
  for (const id of ids) {
    const m = containerTask(id);
    if (m && !names.includes(m[2]!)) names.push(m[2]!);
  }
  assert.ok(names.length >= 3, `a lab of at least 3 containers is needed: ${names.join(", ")}`);
  const pos = (n: string) =>
    n === names[0] ? "first" : n === names.at(-1) ? "last" : n === names[1] ? "middle" : undefined;
  const perContainer: { kind: string; position: "first" | "middle" | "last"; id: string }[] = [];
  const labLevel: string[] = [];
  for (const id of ids) {
    const m = containerTask(id);
    if (!m) labLevel.push(id);
    else {
      const p = pos(m[2]!);
      if (p) perContainer.push({ kind: m[1]!, position: p, id });
    }
  }
  return { labLevel, perContainer, names };
}

/** Every path under `dir`, relative, sorted (files and directories; symlinks not followed). */
export async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** The loop devices a run's output says it attached (image.loop's note: "… → /dev/loopN"). */
export const loopsIn = (r: { stdout: string }) => [
  ...new Set([...r.stdout.matchAll(/→ (\/dev\/loop\d+)/g)].map((m) => m[1]!)),
];

const LOSETUP = ["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"] as const;

/** Whether `device` is attached to `image` (losetup's back file; `listed`: that list, read already). */
async function backsImage(
  lab: Pick<Lab, "ns">,
  device: string,
  image: string,
  listed?: string,
): Promise<boolean> {
  const out = listed ?? (await lab.ns.run(LOSETUP[0], LOSETUP.slice(1))).stdout;
  return out.split("\n").some((l) => {
    const [n, f] = l.trim().split(/\s+/);
    return n === device && (f === image || f === `${image}`);
  });
}

/**
 * Whether another lab holds the claim on `device` (src/image/loop-claims.ts): it attached the same
 * image at that freed number, and may not have mounted it yet (the claim is written with the
 * attach, under the loop lock).
 */
async function claimedByOther(lab: Lab, device: string): Promise<boolean> {
  const text = await readFile(join(CLAIMS_DIR, device.replace(/^\/dev\//, "")), "utf8").catch(() => "");
  try {
    const c = JSON.parse(text) as { lowerDir?: unknown };
    return typeof c.lowerDir === "string" && !c.lowerDir.startsWith(`${lab.dir}/`);
  } catch {
    return false;
  }
}

/** Whether a mount namespace other than the lab's mounts `device` (then another test reused it). */
async function mountedElsewhere(lab: Pick<Lab, "ns">, device: string): Promise<boolean> {
  const mine = await readlink(`/proc/${lab.ns.pid}/ns/mnt`).catch(() => "");
  const seen = new Set<string>([mine]);
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const ns = await readlink(`/proc/${p}/ns/mnt`).catch(() => "");
    if (!ns || seen.has(ns)) continue;
    seen.add(ns);
    const info = await readFile(`/proc/${p}/mountinfo`, "utf8").catch(() => "");
    if (info.split("\n").some((l) => l.split(" - ")[1]?.split(" ")[1] === device)) return true;
  }
  return false;
}

/**
 * Assert none of `devices` (this lab's, from its output) still holds the image. Other tests attach
 * the same cached image and `losetup --find` hands out freed numbers again: a device that holds the
 * image but is mounted in another test's namespace is theirs now.
 */
export async function assertLoopsGone(
  lab: Lab,
  devices: string[],
  image: string,
  what: string,
  /** losetup's list, read a moment ago: the first look needs no process of its own. */
  listed?: string,
) {
  for (const d of devices) {
    let first = listed;
    const gone = await waitFor(
      async () => {
        const seen = first;
        first = undefined;
        return (
          !(await backsImage(lab, d, image, seen)) ||
          (await claimedByOther(lab, d)) ||
          (await mountedElsewhere(lab, d))
        );
      },
      4000,
      100,
    );
    const claim = await readFile(join(CLAIMS_DIR, d.replace(/^\/dev\//, "")), "utf8").catch(() => "none");
    assert.ok(
      gone,
      `${what}: loop device ${d} of this lab still holds ${image} (its claim: ${claim.trim()})`,
    );
  }
}

/** The image file of the lab's config (file:// URL). */
export async function imageOf(lab: Lab): Promise<string> {
  const url = (await readFile(lab.config, "utf8")).match(/url: file:\/\/(\S+)/)?.[1];
  assert.ok(url, "the lab's image is a file:// URL");
  return url;
}

/** What a residue check compares against: the namespace, the lab's files, the inotify limit. */
export interface Baseline {
  snap: NsSnapshot;
  files: string[];
  inotify: number;
  /** Holds of the lab on host-wide settings (kept when a run keeps the network). */
  holds: string[];
  /** The lab's journal: each live entry's task id and state (what a `run down` would undo). */
  journal: string[];
}

/** The live entries of the lab's journal, as "id state", in order (read only, never written). */
export async function journalEntries(lab: Lab): Promise<string[]> {
  const j = await Journal.open(realHost(), journalPath(join(lab.workdir, lab.name)), lab.name, false);
  return j.entries().map((e) => `${e.id} ${e.state}`);
}

// The commands of TestNamespace.snapshot and losetup's list, run by one shell in the namespace (one
// process entering it, not six: the residue check follows each of a hundred runs), each output
// ended by a NUL.
const STATE_SCRIPT = [
  "iptables-save",
  "ip -o link",
  "ip -o addr",
  "cat /proc/sys/net/ipv4/ip_forward",
  "findmnt -rn -o TARGET,FSTYPE",
  LOSETUP.join(" "),
]
  .map((c) => `${c}; printf '\\0'`)
  .join("; ");

/**
 * The namespace's state as TestNamespace.snapshot gives it (the same text: each output without its
 * last newline, as execa gives it), and the loop devices losetup lists, read by one process.
 */
export async function nsState(lab: Pick<Lab, "ns">): Promise<{ snap: NsSnapshot; losetup: string }> {
  const out = (await lab.ns.run("sh", ["-c", STATE_SCRIPT])).stdout.split("\0");
  assert.equal(out.length, 7, `the state script's output: ${out.join("|")}`);
  const [iptables, links, addrs, ipForward, mounts, losetup] = out.map((o) => o.replace(/\n$/, "")) as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  return {
    snap: {
      links: links.replace(/\s+link\/.*$/gm, ""),
      addrs,
      iptables: iptables
        .split("\n")
        .filter((l) => !l.startsWith("#"))
        .join("\n"),
      ipForward: ipForward.trim(),
      mounts: mounts.split("\n").sort().join("\n"),
    },
    losetup,
  };
}

/** Take a baseline of the lab. */
export async function baseline(lab: Lab): Promise<Baseline> {
  return {
    snap: (await nsState(lab)).snap,
    files: await tree(lab.dir),
    inotify: await inotify(),
    holds: await holdsUnder(lab.dir),
    journal: await journalEntries(lab),
  };
}

/**
 * Assert the lab is back at `b`: links, addresses, iptables-save (filter and nat), ip_forward,
 * mounts; no systemd-nspawn, cgroup or /run dir of the lab; no loop device of the lab; the inotify
 * limit and no hold of the lab on it or on ip_forward; and no file in the lab's temp dir (workdir, machinesDir, inventory) but `allowed` ones.
 */
export async function assertAsBefore(
  lab: Lab,
  b: Baseline,
  what: string,
  o: { loops?: string[]; image?: string; allowed?: RegExp; ignore?: (keyof NsSnapshot)[] } = {},
): Promise<void> {
  const state = await nsState(lab);
  const now = state.snap;
  for (const k of o.ignore ?? []) now[k] = b.snap[k];
  // A bridge that stays (made before the run) changes by itself: IPv6 duplicate address detection
  // ends, and its carrier goes once ports came and went (a new bridge shows none of NO-CARRIER).
  sameSnapshot(settled(now), settled(b.snap), what);
  assert.deepEqual(await nspawnPids(lab.dir), [], `${what}: systemd-nspawn processes are left`);
  assert.deepEqual(await cgroupsOf(lab.prefix), [], `${what}: container cgroups are left`);
  assert.deepEqual(await propagateDirs(lab.prefix), [], `${what}: nspawn's /run dirs are left`);
  if (o.loops && o.image) await assertLoopsGone(lab, o.loops, o.image, what, state.losetup);
  assert.equal(await inotify(), b.inotify, `${what}: fs.inotify.max_user_instances differs from before`);
  assert.deepEqual(
    await holdsUnder(lab.dir),
    b.holds,
    `${what}: holds on host-wide settings differ from before`,
  );
  const allowed = o.allowed ?? /$^/;
  const extra = (await tree(lab.dir)).filter((f) => !b.files.includes(f) && !allowed.test(f));
  assert.deepEqual(extra, [], `${what}: files were left`);
}

/** The files a run may leave in its lab's directory after a full rollback: the journal (and its dirs). */
export const journalOnly = (labName: string) =>
  new RegExp(`^(work|work/${labName}|work/${labName}/journal\\.jsonl)$`);

/**
 * What `run down --purge` may leave: the journal, and the (empty) machinesDir itself, a host
 * directory like /var/lib/machines that `run up` makes when missing and down does not remove.
 */
export const afterPurge = (labName: string) =>
  new RegExp(`^(machines|work|work/${labName}|work/${labName}/journal\\.jsonl)$`);

/** The console logs a failed run keeps of the containers it rolled back (`<lab>/logs/<run>/<name>.log`). */
export const keptLogs = (labName: string) => new RegExp(`^work/${labName}/logs(/[^/]+(/[^/]+\\.log)?)?$`);

/** A CLI run in the lab's namespace that a test watches line by line and may kill midway. */
export interface Watched {
  child: ChildProcess;
  /** The node process running the CLI (nsenter execs it: same PID, checked). */
  pid: number;
  lines: string[];
  stderr: string[];
  /** Resolves with the exit code (or 128 + signal number) and everything printed. */
  done: Promise<NsResult & { signal: NodeJS.Signals | null }>;
  /** Wait until a printed line matches (false when the run ended first or after ~timeout). */
  until(re: RegExp, timeoutMs?: number): Promise<boolean>;
}

// Watched runs not yet ended: a failing test kills them (killWatched) so none outlives it.
const live = new Set<Watched>();

/** SIGKILL every watched run still going (cleanup in a test's finally). */
export async function killWatched(): Promise<void> {
  for (const w of [...live]) await crash(w);
}

/** Start `aplspawn -c <config> ARGS` inside the lab's namespace, watching its output. */
export async function watch(lab: Lab, args: string[], env: Record<string, string> = {}): Promise<Watched> {
  const child = lab.spawnCli(args, env);
  const lines: string[] = [];
  const stderr: string[] = [];
  let ended = false;
  const listeners = new Set<() => void>();
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(l);
    for (const f of listeners) f();
  });
  createInterface({ input: child.stderr! }).on("line", (l) => stderr.push(l));
  const done = new Promise<NsResult & { signal: NodeJS.Signals | null }>((res) =>
    child.once("close", (code, signal) => {
      ended = true;
      for (const f of listeners) f();
      res({
        exitCode: code ?? 128,
        signal,
        stdout: lines.join("\n"),
        stderr: stderr.join("\n"),
      });
    }),
  );
  await new Promise<void>((res, rej) => {
    child.once("spawn", res);
    child.once("error", rej);
  });
  const pid = child.pid!;
  // nsenter without a PID namespace execs the command: wait until the PID is node itself.
  const isNode = await waitFor(
    async () =>
      ended || (await readlink(`/proc/${pid}/exe`).catch(() => "")) === (await readlink("/proc/self/exe")),
    2000,
    10,
  );
  assert.ok(isNode, "the CLI's PID is node");
  const w: Watched = {
    child,
    pid,
    lines,
    stderr,
    done,
    until(re, timeoutMs = 300_000) {
      return new Promise<boolean>((res) => {
        const timer = setTimeout(() => finish(false), timeoutMs);
        const check = () => {
          if (lines.some((l) => re.test(l))) finish(true);
          else if (ended) finish(false);
        };
        const finish = (v: boolean) => {
          clearTimeout(timer);
          listeners.delete(check);
          res(v);
        };
        listeners.add(check);
        check();
      });
    },
  };
  live.add(w);
  void done.then(() => live.delete(w));
  return w;
}

/** SIGKILL a watched run (the node process itself) and wait for it to be gone. */
export async function crash(w: Watched): Promise<void> {
  try {
    process.kill(w.pid, "SIGKILL");
  } catch {}
  await w.done;
}

/** A `--json` task event line for `id` (a glob-free regex) in state `state`. */
export const eventRe = (id: string, state: string) =>
  new RegExp(`"event":"task","id":"${id.replace(/[.[\]]/g, "\\$&")}","title":"[^"]*","state":"${state}"`);

/** Lines of `iptables-save` (both tables) in the namespace. */
export async function iptablesSave(lab: Lab): Promise<string[]> {
  return (await lab.ns.run("iptables-save", [])).stdout.split("\n").filter((l) => l && !l.startsWith("#"));
}

/** Assert no rule line of iptables-save appears twice (our rules are each made once). */
export async function assertNoDuplicateRules(lab: Lab, chain: string, what: string): Promise<void> {
  const rules = (await iptablesSave(lab)).filter((l) => l.startsWith("-A ") && l.includes(chain));
  assert.ok(rules.length > 0, `${what}: no rule of chain ${chain}`);
  const dup = rules.filter((l, i) => rules.indexOf(l) !== i);
  assert.deepEqual(dup, [], `${what}: duplicated iptables rules`);
}

/** Overlay mounts in the namespace whose target is under `dir`. */
export async function overlayMounts(lab: Lab, dir: string): Promise<string[]> {
  return (await lab.ns.run("findmnt", ["-rn", "-t", "overlay", "-o", "TARGET"])).stdout
    .split("\n")
    .filter((l) => l.startsWith(`${dir}/`));
}

/** Loop devices attached to `image` and mounted at the lab's lower dir (this lab's). */
export async function labLoops(lab: Lab, labName: string): Promise<string[]> {
  const lower = join(lab.workdir, labName, "lower");
  return (await lab.ns.run("findmnt", ["-rn", "-o", "SOURCE,TARGET"])).stdout
    .split("\n")
    .map((l) => l.split(" "))
    .filter(([s, t]) => t === lower && s?.startsWith("/dev/loop"))
    .map(([s]) => s!);
}

/**
 * Cleanup after a lab test: detach those of `devices` (the names this lab's runs printed) that still
 * hold `image`, are mounted in no other test's namespace (one still mounted in this lab's namespace
 * is marked for autoclear: `losetup -d` frees it when the namespace goes) and are not another lab's.
 * Decided under aplspawn's loop lock, by its claims (src/image/loop-claims.ts), as aplspawn decides:
 * the names are reused, and another test's lab may hold the same number now, attached and claimed
 * but not mounted yet (between its image.loop and image.lower). Detaching that one by name made the
 * other lab's image.lower fail with "No loop device holds the root partition" (issue #29, item 1).
 * Returns the devices it detached. Never throws.
 */
export async function detachOrphans(
  lab: Pick<Lab, "ns" | "dir">,
  devices: string[],
  image: string,
): Promise<string[]> {
  const detached: string[] = [];
  const ctx = runContext(realHost());
  await withLoopClaims(ctx, async (v) => {
    for (const d of new Set(devices)) {
      try {
        const owner = v.owner(d);
        if (owner !== undefined && !owner.startsWith(`${lab.dir}/`)) continue;
        if ((await backsImage(lab, d, image)) && !(await mountedElsewhere(lab, d))) {
          await lab.ns.run("losetup", ["-d", d]);
          detached.push(d);
        }
      } catch {}
    }
  }).catch(() => undefined);
  return detached;
}

/** What labTest hands its test besides the lab. */
export interface LabStart {
  /** The image file of the lab's config. */
  image: string;
  /** The lab before anything ran. */
  start: Baseline;
  /** The loop devices of every run given to track. */
  loops: string[];
  /** Note the loop devices the runs' output names (for the cleanup) and return them. */
  track(...runs: { stdout: string }[]): string[];
}

/**
 * A test (it needs root, and is skipped without) on a lab from withLab whose chain is its name in
 * capitals: `fn` gets the image and a baseline; whether `fn` passes or not, every watched run still
 * going is killed and the tracked loop devices that leaked are detached.
 */
export function labTest(
  title: string,
  name: string,
  subnet: number,
  fn: (lab: Lab, s: LabStart) => Promise<void>,
  network: NonNullable<ConfigOverrides["network"]> = {},
): void {
  const run = async (lab: Lab) => {
    const image = await imageOf(lab);
    const loops: string[] = [];
    const track = (...runs: { stdout: string }[]) => {
      const mine = runs.flatMap(loopsIn);
      loops.push(...mine);
      return mine;
    };
    try {
      await fn(lab, { image, start: await baseline(lab), loops, track });
    } finally {
      await killWatched();
      await detachOrphans(lab, loops, image);
    }
  };
  test(title, { skip }, () =>
    withLab(name, subnet, run, { network: { chain: name.toUpperCase(), ...network } }),
  );
}

/**
 * The task ids of the lab's `run up` around its containers' tasks: the lab-level ids before them
 * (network, image, lab), the per-container ids (see classify) and the lab-level ids after them.
 */
export async function faultTargets(lab: Lab): Promise<{
  /** Every id, in the order --list-tasks gives. */
  ids: string[];
  early: string[];
  perContainer: ReturnType<typeof classify>["perContainer"];
  late: string[];
}> {
  const ids = await listTasks(lab);
  const firstContainer = ids.findIndex((id) => containerTask(id));
  const { labLevel, perContainer } = classify(ids);
  return {
    ids,
    early: labLevel.filter((id) => ids.indexOf(id) < firstContainer),
    perContainer,
    late: labLevel.filter((id) => ids.indexOf(id) > firstContainer),
  };
}

/**
 * One run of `run up` with APLSPAWN_FAIL_AFTER=<id>: what went wrong with it (undefined when it
 * behaved). Residue against `before` throws at once. Its loop devices are not tracked for the
 * cleanup: its own rollback detached them, and the numbers soon serve the other fault test's runs.
 */
export async function faultAfter(
  lab: Lab,
  labName: string,
  id: string,
  before: Baseline,
  image: string,
): Promise<string | undefined> {
  const r = await lab.cli(["--json", "run", "up"], { APLSPAWN_FAIL_AFTER: id });
  const out = `\nstdout:\n${r.stdout.split("\n").slice(-15).join("\n")}\nstderr:\n${r.stderr}`;
  if (r.exitCode === 0) return `fault after ${id}: the run succeeded (the fault never fired)`;
  const problems: string[] = [];
  if (r.exitCode !== 1) problems.push(`exit ${r.exitCode}, not 1`);
  if (!r.stderr.includes(id)) problems.push("stderr does not name the task");
  const sum = runEvents(r).findLast((e): e is SummaryEvent => e.event === "summary");
  if (!sum?.error?.includes(id)) problems.push("the --json summary's error does not name the task");
  if (!/injected failure/.test(r.stderr)) problems.push("stderr does not say the failure was injected");
  const failedUndo = taskEvents(r).filter((e) => e.state === "rollback-failed");
  if (failedUndo.length > 0) problems.push(`rollback failed: ${failedUndo.map((e) => e.id).join(", ")}`);
  // The rollback also forgot what it undid: a `run down` after it has nothing of this run to undo.
  const journal = await journalEntries(lab);
  if ([...journal].sort().join("\n") !== [...before.journal].sort().join("\n"))
    problems.push(`the journal differs from before the run:\n  ${journal.join("\n  ")}`);
  await assertAsBefore(lab, before, `fault after ${id}${out}`, {
    loops: loopsIn(r),
    image,
    // A run failed after a container's nspawn started keeps its log: that is no residue.
    allowed: new RegExp(`${afterPurge(labName).source}|${keptLogs(labName).source}`),
  });
  return problems.length > 0 ? `fault after ${id}: ${problems.join("; ")}${out}` : undefined;
}
