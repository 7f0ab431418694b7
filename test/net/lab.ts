// Helpers for the net tests: a lab config in a temp dir, the CLI run inside a test namespace,
// and readers for its --json output and the namespace's network state.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type NsResult, type NsSnapshot, TestNamespace, tempDir } from "../support/ns.js";

/** A lab config written to a temp dir whose workdir is that temp dir. */
export interface TestLab {
  config: string;
  dir: string;
  /** `aplspawn -c <config> …args` inside the namespace. */
  cli(args: readonly string[], env?: Record<string, string>): Promise<NsResult>;
  cleanup(): Promise<void>;
}

/** Network settings a test may change (everything else is the default). */
export interface NetSettings {
  lab?: string;
  bridge?: string;
  address?: string;
  chain?: string;
  nat?: boolean;
  ipRange?: [string, string];
}

/** Write a config for `ns` and return a handle to run the CLI with it. */
export async function makeLab(ns: TestNamespace, s: NetSettings = {}): Promise<TestLab> {
  const d = await tempDir("aplspawn-net-");
  const config = join(d.path, "aplspawn.yaml");
  const lines = [
    `lab: ${s.lab ?? "nettest"}`,
    `workdir: ${d.path}/work`,
    "network:",
    `  bridge: ${s.bridge ?? "nspawnd0"}`,
    `  address: ${s.address ?? "10.10.12.1/26"}`,
    `  chain: ${s.chain ?? "NSPAWN"}`,
    `  nat: ${s.nat ?? true}`,
    "containers:",
    `  machinesDir: ${d.path}/machines`,
    ...(s.ipRange ? [`  ipRange: [${s.ipRange[0]}, ${s.ipRange[1]}]`] : []),
  ];
  await writeFile(config, `${lines.join("\n")}\n`);
  return {
    config,
    dir: d.path,
    // A generous bound so a hung run fails the test instead of stalling it for ten minutes.
    cli: (args, env) => ns.cli(["-c", config, ...args], { env, cwd: d.path, timeoutMs: 120_000 }),
    cleanup: d.cleanup,
  };
}

/** A lab for each of a list of settings, in the same order. */
export type TestLabs<S extends readonly NetSettings[]> = { -readonly [K in keyof S]: TestLab };

/**
 * Run `fn` in a fresh namespace (its iptables tables made, see initTables) with a lab config for
 * each of `settings` and a snapshot of the namespace before anything ran; the configs' temp dirs
 * and the namespace go whatever `fn` does.
 */
export async function withNetLabs<const S extends readonly NetSettings[]>(
  settings: S,
  fn: (ns: TestNamespace, labs: TestLabs<S>, before: NsSnapshot) => Promise<void>,
): Promise<void> {
  const ns = await TestNamespace.create();
  const labs: TestLab[] = [];
  try {
    for (const s of settings) labs.push(await makeLab(ns, s));
    await initTables(ns);
    await fn(ns, labs as TestLabs<S>, await ns.snapshot());
  } finally {
    for (const lab of labs) await lab.cleanup();
    await ns.destroy();
  }
}

/** withNetLabs with one lab. */
export function withNetLab(
  settings: NetSettings,
  fn: (ns: TestNamespace, lab: TestLab, before: NsSnapshot) => Promise<void>,
): Promise<void> {
  return withNetLabs([settings], (ns, [lab], before) => fn(ns, lab, before));
}

/** Assert a CLI run exited 0 (showing its output when it did not). */
export function ok(r: NsResult): NsResult {
  assert.equal(r.exitCode, 0, `exit ${r.exitCode}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/**
 * Make the filter and nat tables exist before the baseline snapshot. The first iptables command
 * in a fresh namespace instantiates a table (nft: an empty table; legacy: the table module's
 * per-namespace state) and nothing in iptables removes it again; on any real host these tables
 * already exist. Creating and deleting a throwaway chain does exactly that and leaves no rule.
 */
export async function initTables(ns: TestNamespace): Promise<void> {
  for (const table of ["filter", "nat"]) {
    for (const args of [
      ["-w", "-t", table, "-N", "APLSPAWN-TEST-INIT"],
      ["-w", "-t", table, "-X", "APLSPAWN-TEST-INIT"],
    ]) {
      const r = await ns.run("iptables", args);
      assert.equal(r.exitCode, 0, r.stderr);
    }
  }
}

/** iptables-save without comments and counters: the rules only, in order. */
export async function rules(ns: TestNamespace): Promise<string> {
  const r = await ns.run("iptables-save", []);
  return r.stdout
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ""))
    .join("\n");
}

/** Assert two snapshots are equal, naming the part that differs. */
export function sameSnapshot(actual: NsSnapshot, expected: NsSnapshot, what: string): void {
  for (const k of Object.keys(expected) as (keyof NsSnapshot)[])
    assert.equal(actual[k], expected[k], `${what}: ${k} differs`);
}

/**
 * A snapshot without what the kernel changes on its own a moment after a change: a bridge's
 * carrier flags follow its ports, an IPv6 link-local address leaves "tentative" after DAD.
 */
export function settled(s: NsSnapshot): NsSnapshot {
  return {
    ...s,
    links: s.links.replace(/NO-CARRIER,|,LOWER_UP|state \S+ /g, ""),
    addrs: s.addrs.replace(/ (tentative|optimistic) /g, " "),
  };
}

/** The compiled probe fixture (runs netProbes inside a namespace, prints JSON). */
export const PROBE_FIXTURE = resolve(import.meta.dirname, "probe-fixture.js");

/** Run the net status probes for `lab` inside the namespace. */
export async function probes(
  ns: TestNamespace,
  lab: TestLab,
): Promise<{ name: string; target: string; ok: boolean; detail?: string }[]> {
  const r = await ns.run(process.execPath, [PROBE_FIXTURE, lab.config]);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout);
}
