// What the net tests share besides the lab fixture (test/support/lab.ts): their lab, nettest, on
// the original tool's network defaults; the namespace's iptables rules; the net status probes.
import assert from "node:assert/strict";
import { cp, rm, symlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { type LabConfig, type NetLab, withNetLab } from "./lab.js";
import { skip, type TestNamespace } from "./ns.js";

/**
 * Run `fn` with the net tests' lab (no image): nettest on bridge nspawnd0, address 10.10.12.1/26,
 * chain NSPAWN, with `network` over these.
 */
export function withNettest(network: Record<string, unknown>, fn: (lab: NetLab) => Promise<void>) {
  return withNetLab("nettest", 12, fn, { network: { bridge: "nspawnd0", chain: "NSPAWN", ...network } });
}

/** A test on the net tests' lab (withNettest), skipped where it cannot run (not root). */
export const netTest = (
  title: string,
  network: Record<string, unknown>,
  fn: (lab: NetLab) => Promise<void>,
) => test(title, { skip }, () => withNettest(network, fn));

/** iptables-save without comments and counters: the rules only, in order. */
export async function rules(ns: TestNamespace): Promise<string> {
  const r = await ns.run("iptables-save", []);
  return r.stdout
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ""))
    .join("\n");
}

/** The compiled probe fixture (runs netProbes inside a namespace, prints JSON). */
const NET_PROBES = resolve(import.meta.dirname, "bin/net-probes.js");

/** Run the net status probes for `lab` inside its namespace. */
export async function probes(
  lab: LabConfig,
): Promise<{ name: string; target: string; ok: boolean; detail?: string }[]> {
  const r = await lab.ns.run(process.execPath, [NET_PROBES, lab.config]);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/**
 * Switch `iptables` to the legacy backend inside the namespace only: a copy of /etc/alternatives
 * whose iptables links point to the legacy binaries, bind-mounted over the real one in the test's
 * private mount namespace. iptables-nft stays reachable under its own name.
 */
export async function useLegacy(ns: TestNamespace, dir: string): Promise<void> {
  const alt = join(dir, "alternatives");
  await cp("/etc/alternatives", alt, { recursive: true, verbatimSymlinks: true });
  for (const t of ["iptables", "iptables-save", "iptables-restore"]) {
    await rm(join(alt, t), { force: true });
    await symlink(`/usr/sbin/${t.replace("iptables", "iptables-legacy")}`, join(alt, t));
  }
  const r = await ns.run("mount", ["--bind", alt, "/etc/alternatives"]);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match((await ns.run("iptables", ["-V"])).stdout, /\(legacy\)/);
}
