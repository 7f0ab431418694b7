// Helpers shared by the repetition, drift, scale and security tests: status as JSON, what of a lab
// the host holds (open files, processes, its loop device), and the CLI's JSON events.
import assert from "node:assert/strict";
import { readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import type { Lab } from "./lab.js";
import type { NsResult } from "./ns.js";
import { waitFor } from "./wait.js";

/** One check of `status --json`. */
export interface Check {
  name: string;
  target: string;
  ok: boolean;
  detail: string;
}

/** `status --json`: its exit code and checks. */
export async function status(lab: Lab): Promise<{ exitCode: number; checks: Check[]; raw: NsResult }> {
  const r = await lab.cli(["--json", "status"]);
  let checks: Check[] = [];
  try {
    checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
  } catch {
    assert.fail(`status --json printed no JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  }
  return { exitCode: r.exitCode, checks, raw: r };
}

/** "name @ target" of each failing check, sorted: a readable set to compare. */
export const failing = (checks: Check[]) =>
  checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name} @ ${c.target}`)
    .sort();

const pids = async () => (await readdir("/proc")).filter((n) => /^\d+$/.test(n));

/** Open file descriptors of any process on the host that point under `dir` ("pid: target"). */
export async function openFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await pids()) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const t = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      if (t.startsWith(`${dir}/`) || t === dir) out.push(`${pid}: ${t}`);
    }
  }
  return out;
}

/**
 * Processes of the lab: whose argv, working directory or root is under `dir`, or whose cgroup is one
 * of the lab's containers' (aplspawn/<prefix>…). "pid argv" each.
 */
export async function processesOf(dir: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await pids()) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ");
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "");
    const root = await readlink(`/proc/${pid}/root`).catch(() => "");
    const cg = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
    if (
      argv.includes(dir) ||
      cwd.startsWith(dir) ||
      root.startsWith(dir) ||
      cg.includes(`/aplspawn/${prefix}`)
    )
      out.push(`${pid} ${argv.trim()}`);
  }
  return out;
}

/** The loop device the lab's image.loop recorded (lower.loop beside the lower dir), if any. */
export async function labLoop(lab: Lab, labName: string): Promise<string | undefined> {
  const rec = await readFile(join(lab.workdir, labName, "lower.loop"), "utf8").catch(() => "");
  return rec ? (JSON.parse(rec) as { device: string }).device : undefined;
}

/** The backing file of a loop device, or "" when it is detached. */
export async function backingFile(device: string): Promise<string> {
  const n = device.replace(/^\/dev\//, "");
  return (await readFile(`/sys/block/${n}/loop/backing_file`, "utf8").catch(() => "")).trim();
}

/** Lines of iptables-save of both tables that belong to neither of `chains` (nor jump into them). */
export async function foreignRules(lab: Lab, chains: string[]): Promise<string> {
  const r = await lab.ns.run("iptables-save", []);
  assert.equal(r.exitCode, 0, r.stderr);
  // A lab's network.chain names its chains: that one, <chain>-IN (to the host), <chain>-OUT (beyond
  // the host), <chain>-DNAT (forwards).
  const owned = chains.flatMap((c) => [c, `${c}-IN`, `${c}-OUT`, `${c}-DNAT`]);
  const ours = (l: string) =>
    owned.some(
      (c) =>
        l === `:${c} - [0:0]` || l.startsWith(`:${c} `) || new RegExp(`(^| )(-A|-j|-g) ${c}( |$)`).test(l),
    );
  return r.stdout
    .split("\n")
    .filter((l) => !l.startsWith("#") && !ours(l))
    .map((l) => l.replace(/\[\d+:\d+\]$/, "[counters]"))
    .join("\n");
}

/**
 * processesOf, once what is still exiting has gone: a container's last processes may take a moment
 * to be reaped after `run down` returns; a leak is still there after `waitMs`.
 */
export async function processesLeft(dir: string, prefix: string, waitMs = 5000): Promise<string[]> {
  let left: string[] = [];
  await waitFor(
    async () => {
      left = await processesOf(dir, prefix);
      return left.length === 0;
    },
    waitMs,
    250,
  );
  return left;
}
