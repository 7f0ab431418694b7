// The lab fixture of the real tests: a private network + mount namespace (ns.ts), a temp dir holding
// workdir, machinesDir, config and inventory, a config written from the lab's defaults and section
// overrides, the CLI run inside the namespace, and cleanup that kills every systemd-nspawn the test
// started (even when the test failed), restores the inotify limit and proves nothing of the test is
// left. withLab is the whole lab (the test image, containers); withNetLab is the same lab without
// an image, for tests of the network alone: its config names no image and the image is not built.
// More labs may share a fixture's namespace and temp dir (Lab.add).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { stringify } from "yaml";
import { CLAIMS_DIR } from "../../src/image/loop-claims.js";
import { RANGES_DIR } from "../../src/lab/id-ranges.js";
import { controlPathDir } from "../../src/lab/inventory.js";
import { ensureTestImage } from "./image.js";
import { LIMIT } from "./inotify.js";
import { CLI, type NsResult, type NsSnapshot, requires, TestNamespace, tempDir, withoutSudo } from "./ns.js";
import { waitFor } from "./wait.js";

/**
 * The image tests use: the cached GPT test image that `aplspawn image build` made
 * (test/support/image.ts builds it once, then reuses it).
 */
export async function testImage(): Promise<{ path: string; sha256: string; url: string }> {
  const i = await ensureTestImage();
  return { ...i, url: `file://${i.path}` };
}

/** fs.inotify.max_user_instances now. */
export const inotify = async () => Number((await readFile(LIMIT, "utf8")).trim());

/** Sections of a lab's config a test may change: each one's keys go over the lab's defaults. */
export interface ConfigOverrides {
  lab?: string;
  network?: Record<string, unknown>;
  image?: Record<string, unknown>;
  containers?: Record<string, unknown>;
  inventory?: Record<string, unknown>;
  /** Replaces the base's, not merged into it. */
  provision?: Record<string, unknown>;
}

/** One lab's config in a fixture's namespace and temp dir, and the CLI run with it. */
export interface LabConfig {
  ns: TestNamespace;
  /** The lab's name (its state is <workdir>/<name>). */
  name: string;
  /** The config file. */
  config: string;
  machinesDir: string;
  inventory: string;
  /** Container names start with it. */
  prefix: string;
  /** Write the config: the lab's defaults, then the fixture's base, then `over`, section by section. */
  writeConfig(over?: ConfigOverrides): Promise<void>;
  /** Run `aplspawn -c <config> …args` inside the namespace, in the temp dir. */
  cli(args: readonly string[], env?: Record<string, string>): Promise<NsResult>;
  /** Start `aplspawn -c <config> …args` inside the namespace (stdout and stderr piped), to watch or kill it. */
  spawnCli(args: readonly string[], env?: Record<string, string>): ChildProcess;
}

/** What a test of a lab without image gets (withNetLab). */
export interface NetLab extends LabConfig {
  /** The temp dir (workdir, machinesDir, configs, inventories). */
  dir: string;
  workdir: string;
  /** The namespace before the test changed anything (a test that changes more first may retake it). */
  before: NsSnapshot;
  /**
   * Another lab in the same namespace and temp dir, with its own config, machinesDir and inventory
   * (<name>.yaml, machines-<name>, inventory-<name>.txt), the same workdir, and this one's image if
   * it has one. The fixture's cleanup and residue proof cover it too.
   */
  add(name: string, subnet: number, base?: ConfigOverrides): Promise<LabConfig>;
  /** Every lab of the fixture: this one first, then those added. */
  labs: readonly LabConfig[];
  /** Write `text` to the file `name` in the temp dir (its parents made); gives its path. */
  file(name: string, text: string): Promise<string>;
}

/** What a test of the whole lab gets (withLab). */
export interface Lab extends NetLab {
  /** The test image (file and digest). */
  image: { path: string; sha256: string };
  /** fs.inotify.max_user_instances before the test. */
  inotifyBefore: number;
}

/**
 * A playbook for the lab's containers (group aplspawned, with become): `tasks`, YAML already
 * indented under `tasks:`; facts gathered unless `facts` is false.
 */
export const playbook = (tasks: string, o: { facts?: boolean } = {}) =>
  `- hosts: aplspawned\n  become: true\n${o.facts === false ? "  gather_facts: false\n" : ""}  tasks:\n${tasks}`;

/** Assert a CLI run exited 0 (showing its output when not). */
export function ok(r: NsResult, what = "the run"): NsResult {
  assert.equal(r.exitCode, 0, `${what} exited ${r.exitCode}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/**
 * `run down --purge` (env: the CLI's environment), which must succeed and leave nothing but dot
 * files in the image store `store`: `image` (what the lab pulled there) goes with it.
 */
export async function downPurgesStore(
  lab: LabConfig,
  store: string,
  image: string,
  env?: Record<string, string>,
): Promise<void> {
  ok(await lab.cli(["run", "down", "--purge"], env), "run down --purge");
  assert.deepEqual(
    (await readdir(store)).filter((f) => !f.startsWith(".")),
    [],
    `the purge removes ${image}`,
  );
}

/**
 * Spread into a containers override with sets: the fixture writes count and prefix, which
 * containers.sets take the place of (undefined leaves a key out).
 */
export const SETS_ONLY = { count: undefined, prefix: undefined } as const;

/** A field of a /proc/PID/status text (CapBnd, NoNewPrivs, …). */
export const statusField = (status: string, name: string) =>
  new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1];

/** A container's upper layer: on its own file system (containers/<name>/disk), mounted in the lab's namespace. */
export const upperOf = (lab: LabConfig & { workdir: string }, name: string) =>
  join(lab.workdir, lab.name, "containers", name, "disk", "upper");

/**
 * fn on a container's upper layer while its lab is down, as a container's root left it: the
 * container's file system (disk.img) mounted in the test's namespace at a directory of the test's,
 * reached from here through the namespace's root (/proc/<holder>/root); unmounted and detached again
 * before fn's promise settles, so that the lab never finds a device of the test's.
 */
export async function withUpperOf<T>(
  lab: NetLab,
  name: string,
  fn: (upper: string) => Promise<T>,
): Promise<T> {
  const file = join(lab.workdir, lab.name, "containers", name, "disk.img");
  const mnt = await mkdtemp(join(lab.dir, "upper-"));
  const dev = ok(
    await lab.ns.run("losetup", ["--find", "--show", "--", file]),
    `losetup ${file}`,
  ).stdout.trim();
  try {
    ok(await lab.ns.run("mount", ["-t", "ext4", "--", dev, mnt]), `mount ${dev}`);
    try {
      return await fn(join(`/proc/${lab.ns.pid}/root`, mnt, "upper"));
    } finally {
      ok(await lab.ns.run("umount", [mnt]), `umount ${mnt}`);
    }
  } finally {
    ok(await lab.ns.run("losetup", ["--detach", dev]), `losetup --detach ${dev}`);
    const gone = await waitFor(
      async () => (await lab.ns.run("losetup", ["-j", file])).stdout.trim() === "",
      30_000,
    );
    assert.ok(gone, `${dev} still holds ${file} after losetup --detach`);
    await rmdir(mnt);
  }
}

/** What runs on a lab (withLab's fn). */
export type LabFn<L> = (lab: L) => Promise<void>;

/** A lab test's body: the lab, and the test's context (for subtests). */
export type LabBody<L> = (lab: L, t: TestContext) => Promise<void>;

/**
 * Run fn with a fresh lab of the test image (3 containers by default); always clean up, then prove
 * the namespace and host hold nothing of it. `subnet`: the third octet of the lab's addresses (each
 * lab has its own: ssh and Ansible cache by address).
 */
export const withLab = (name: string, subnet: number, fn: LabFn<Lab>, base: ConfigOverrides = {}) =>
  runLab(name, subnet, base, true, (lab) => fn(lab as Lab));

/** withLab without image: a lab whose network alone the test sets up (no container ever starts). */
export const withNetLab = (name: string, subnet: number, fn: LabFn<NetLab>, base: ConfigOverrides = {}) =>
  runLab(name, subnet, base, false, fn);

/**
 * The lab a lab test runs on: its name and subnet (see withLab), the programs it needs besides root,
 * and the sections of its config over the lab's defaults.
 */
export interface LabSpec extends ConfigOverrides {
  name: string;
  subnet: number;
  requires?: string[];
}

/**
 * The lab of a reliability test: `count` containers, iptables rules in a chain of its own (its name
 * in capitals, for the test to find them), and no Ansible ping at the end of up (the test checks
 * what it needs itself).
 */
export const ownChainLab = (name: string, subnet: number, count = 2): LabSpec => ({
  name,
  subnet,
  containers: { count },
  network: { chain: name.toUpperCase() },
  inventory: { ping: false },
});

/** A test on a fresh lab from withLab (like `test(title, { skip }, fn)`: skipped where it cannot run). */
export const labTest = (title: string, spec: LabSpec, fn: LabBody<Lab>) => specTest(title, spec, true, fn);

/** A test on a fresh lab without image, from withNetLab. */
export const netLabTest = (title: string, spec: LabSpec, fn: LabBody<NetLab>) =>
  specTest(title, spec, false, fn);

function specTest(title: string, spec: LabSpec, withImage: boolean, fn: LabBody<Lab>): void {
  const { name, subnet, requires: needs = [], ...base } = spec;
  test(title, { skip: requires("root", ...needs) }, (t) =>
    runLab(name, subnet, base, withImage, (lab) => fn(lab as Lab, t)),
  );
}

/**
 * Make the filter and nat tables exist before the baseline snapshot, as on any real host. The first
 * iptables command in a fresh namespace instantiates a table (nft: an empty table; legacy: the table
 * module's per-namespace state) and nothing in iptables removes it again. Creating and deleting a
 * throwaway chain does exactly that and leaves no rule.
 */
export async function initTables(ns: TestNamespace): Promise<void> {
  for (const table of ["filter", "nat"])
    for (const op of ["-N", "-X"]) {
      const r = await ns.run("iptables", ["-w", "-t", table, op, "APLSPAWN-TEST-INIT"]);
      assert.equal(r.exitCode, 0, r.stderr);
    }
}

async function runLab(
  name: string,
  subnet: number,
  base: ConfigOverrides,
  withImage: boolean,
  fn: LabFn<NetLab>,
): Promise<void> {
  // Only a lab with containers holds the inotify limit: a lab without is not to touch it.
  const inotifyBefore = withImage ? await inotify() : undefined;
  const image = withImage ? await testImage() : undefined;
  // A network-only lab's CLI runs are short: a hung one fails the test instead of stalling it.
  const timeoutMs = withImage ? undefined : 120_000;
  const t = await tempDir(`aplspawn-${name}-`);
  const ns = await TestNamespace.create();
  const workdir = join(t.path, "work");
  const labs: LabConfig[] = [];
  const labConfig = (n: string, sub: number, files: string, b: ConfigOverrides): LabConfig => {
    const machinesDir = join(t.path, `machines${files}`);
    const inventory = join(t.path, `inventory${files}.txt`);
    const config = join(t.path, files ? `${n}.yaml` : "aplspawn.yaml");
    const section = (
      k: Exclude<keyof ConfigOverrides, "lab" | "provision">,
      over: ConfigOverrides,
      d: object,
    ) => ({
      ...d,
      ...b[k],
      ...over[k],
    });
    const c: LabConfig = {
      ns,
      name: n,
      config,
      machinesDir,
      inventory,
      prefix: (b.containers?.prefix as string | undefined) ?? `${n}-`,
      async writeConfig(over = {}) {
        const doc = {
          lab: over.lab ?? b.lab ?? n,
          workdir,
          network: section("network", over, { bridge: `br-${n}`.slice(0, 15), address: `10.10.${sub}.1/26` }),
          // A lab without image names none, unless the test gives one.
          ...(image || b.image || over.image
            ? { image: section("image", over, image ? { url: image.url } : {}) }
            : {}),
          containers: section("containers", over, {
            count: 3,
            prefix: `${n}-`,
            ipRange: [`10.10.${sub}.10`, `10.10.${sub}.60`],
            machinesDir,
            readyTimeout: 90,
          }),
          inventory: section("inventory", over, { file: inventory }),
          ...(over.provision || b.provision ? { provision: over.provision ?? b.provision } : {}),
        };
        await writeFile(config, stringify(doc));
      },
      cli: (args, env) =>
        ns.cli(["-c", config, ...args], { ...(env ? { env } : {}), cwd: t.path, timeoutMs }),
      spawnCli: (args, env = {}) => {
        const [cmd, a] = ns.wrap(process.execPath, [CLI, "-c", config, ...args]);
        return spawn(cmd, a, {
          cwd: t.path,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...withoutSudo(process.env), ...env },
        });
      },
    };
    labs.push(c);
    return c;
  };
  let failed = false;
  try {
    await initTables(ns);
    const before = await ns.snapshot();
    const lab: NetLab = {
      ...labConfig(name, subnet, "", base),
      dir: t.path,
      workdir,
      before,
      labs,
      async add(n, sub, b = {}) {
        const c = labConfig(n, sub, `-${n}`, b);
        await c.writeConfig();
        return c;
      },
      async file(f, text) {
        const path = join(t.path, f);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, text);
        return path;
      },
      ...(image ? { image, inotifyBefore } : {}),
    };
    await lab.writeConfig();
    await fn(lab);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const killed = await killNspawns(t.path);
    const leftDirs = [
      ...new Set(
        (
          await Promise.all(
            labs.map(async (l) => [...(await propagateDirs(l.prefix)), ...(await cgroupsOf(l.prefix))]),
          )
        ).flat(),
      ),
    ];
    const leftHolds = await holdsUnder(t.path);
    // Ansible's ssh master sockets of the labs (their directory goes with `run down`).
    const cps = labs.map((l) => controlPathDir(join(workdir, l.name)));
    const leftCp = cps.filter((cp) => existsSync(cp));
    for (const cp of cps) await rm(cp, { recursive: true, force: true });
    for (const d of leftDirs)
      await (d.startsWith("/sys/fs/cgroup") ? rmdirTree(d) : rm(d, { recursive: true, force: true })).catch(
        () => undefined,
      );
    const loops = (await ns.run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(t.path));
    for (const l of loops) await ns.run("losetup", ["-d", l.split(":")[0] ?? ""]);
    const inotifyAfter = inotifyBefore === undefined ? undefined : await inotify();
    if (inotifyAfter !== inotifyBefore) await writeFile(LIMIT, `${inotifyBefore}\n`);
    await ns.destroy();
    await t.cleanup();
    // Residue is a failure of its own, unless the test already failed (its error says more).
    if (!failed) {
      assert.equal(killed, 0, "systemd-nspawn processes were left running");
      assert.deepEqual(loops, [], "loop devices were left attached");
      assert.equal(inotifyAfter, inotifyBefore, "fs.inotify.max_user_instances was not restored");
      assert.deepEqual(leftDirs, [], "container cgroups or nspawn's /run dirs were left");
      assert.deepEqual(leftHolds, [], "holds on host-wide settings were left in /run");
      assert.deepEqual(leftCp, [], "ansible's ssh master directory was left in /run");
    }
  }
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

/**
 * Prove zero residue of a lab (and of the labs added to it): namespace state as before (links,
 * addresses, iptables, ip_forward, mounts), no mounts, loop devices, processes, cgroups or /run dirs
 * of the test, no ssh master of a lab nor its directory, no hold of a lab on a host-wide setting,
 * and, for a lab with containers, the inotify limit as it was before the lab.
 */
export async function assertNoResidue(lab: NetLab | Lab, what: string): Promise<void> {
  sameSnapshot(await lab.ns.snapshot(), lab.before, what);
  assert.deepEqual(await nspawnPids(lab.dir), [], `${what}: systemd-nspawn processes are left`);
  const loops = (await lab.ns.run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(lab.dir));
  assert.deepEqual(loops, [], `${what}: loop devices are left`);
  const mounts = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET"])).stdout
    .split("\n")
    .filter((l) => l.includes(lab.dir));
  assert.deepEqual(mounts, [], `${what}: mounts are left`);
  for (const l of lab.labs) {
    assert.deepEqual(await cgroupsOf(l.prefix), [], `${what}: container cgroups are left`);
    assert.deepEqual(
      await propagateDirs(l.prefix),
      [],
      `${what}: systemd-nspawn's per-machine dirs are left`,
    );
    // The lab's ssh masters (Ansible's and status's) and their directory.
    const cp = controlPathDir(join(lab.workdir, l.name));
    assert.equal(existsSync(cp), false, `${what}: ${cp} is left`);
    assert.deepEqual(await processesNaming(cp), [], `${what}: ssh masters are left`);
  }
  // test/run.mjs raises the limit for the whole suite, so a lab's hold rarely changes the value:
  // the record (/run/aplspawn-hold.*.json) naming the lab is what shows a hold left behind.
  assert.deepEqual(await holdsUnder(lab.dir), [], `${what}: holds on host-wide settings are left in /run`);
  if ("inotifyBefore" in lab)
    assert.equal(
      await inotify(),
      lab.inotifyBefore,
      `${what}: fs.inotify.max_user_instances differs from before the lab`,
    );
}

/** argv of every live process, by PID. */
async function processes(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const n of await readdir("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    const raw = await readFile(`/proc/${n}/cmdline`, "utf8").catch(() => "");
    if (raw) out.set(Number(n), raw.replace(/\0$/, "").split("\0"));
  }
  return out;
}

/** Processes whose command line names `text` ("pid: argv"). */
export async function processesNaming(text: string): Promise<string[]> {
  return [...(await processes())]
    .filter(([, argv]) => argv.some((a) => a.includes(text)))
    .map(([pid, argv]) => `${pid}: ${argv.join(" ")}`);
}

/** PIDs of systemd-nspawn processes whose argv mentions `path` (this test's containers). */
export async function nspawnPids(path: string): Promise<number[]> {
  const out: number[] = [];
  for (const [pid, argv] of await processes())
    if ((argv[0] ?? "").endsWith("systemd-nspawn") && argv.some((a) => a.includes(path))) out.push(pid);
  return out;
}

async function childrenOf(pid: number): Promise<number[]> {
  const t = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return t.split(/\s+/).filter(Boolean).map(Number);
}

/** SIGKILL this test's nspawn processes and their containers; wait until they are gone. */
export async function killNspawns(path: string): Promise<number> {
  const pids = await nspawnPids(path);
  for (const pid of pids) {
    for (const c of await childrenOf(pid)) {
      try {
        process.kill(c, "SIGKILL");
      } catch {}
    }
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await waitFor(async () => (await nspawnPids(path)).length === 0, 10_000, 100);
  return pids.length;
}

/** Remove a directory tree bottom-up with rmdir (cgroupfs allows nothing else). */
async function rmdirTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }))
    if (e.isDirectory()) await rmdirTree(join(dir, e.name));
  await rmdir(dir);
}

/**
 * Host-wide records that a lab under `dir` left: holds of settings (src/lab/holds.ts), "<record>: <lab>",
 * and loop device claims (src/image/loop-claims.ts).
 */
export async function holdsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const names = async () =>
    (await readdir("/run").catch(() => [] as string[])).filter((n) =>
      /^\.?aplspawn-hold\..*\.(json|tmp)$/.test(n),
    );
  let found = await names();
  // Records, and the temp files a writer killed midway would leave; a temp file of another lab's
  // writer (each writes the whole record, this lab's holders too) is gone a moment later.
  if (found.some((n) => n.endsWith(".tmp"))) {
    await new Promise((r) => setTimeout(r, 500));
    const still = new Set(await names());
    found = found.filter((n) => !n.endsWith(".tmp") || still.has(n));
  }
  for (const n of found) {
    const text = await readFile(`/run/${n}`, "utf8").catch(() => "{}");
    let rec: { holders?: { lab: string }[] } = {};
    try {
      rec = JSON.parse(text);
    } catch {
      if (text.includes(dir)) out.push(`/run/${n}: cut short, names ${dir}`);
    }
    for (const h of rec.holders ?? []) if (h.lab.startsWith(dir)) out.push(`/run/${n}: ${h.lab}`);
  }
  // Loop device claims (src/image/loop-claims.ts) naming the lab's lower directory, and the lab's
  // claims on its names (src/lab/claims.ts).
  for (const d of [CLAIMS_DIR, "/run/aplspawn-claims"])
    for (const n of await readdir(d).catch(() => [] as string[])) {
      const text = await readFile(join(d, n), "utf8").catch(() => "");
      if (text.includes(dir)) out.push(`${d}/${n}: ${text.trim()}`);
    }
  return out;
}

/** The claims of the registry whose upper layer is under dir: base → upper. */
export async function claimsUnder(dir: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const n of await readdir(RANGES_DIR).catch(() => [] as string[])) {
    const c = JSON.parse(await readFile(join(RANGES_DIR, n), "utf8").catch(() => "{}")) as { upper?: string };
    if (c.upper?.startsWith(dir)) out.set(Number(n), c.upper);
  }
  return out;
}

/** systemd-nspawn's per-machine directories in /run (left when it is killed) of this lab's containers. */
export async function propagateDirs(prefix: string): Promise<string[]> {
  const dir = "/run/systemd/nspawn/propagate";
  return (await readdir(dir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(prefix))
    .map((n) => `${dir}/${n}`);
}

/** The containers' cgroups (aplspawn/<name> in each hierarchy systemd uses) whose name starts with prefix. */
export async function cgroupsOf(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const h of ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"])
    for (const n of await readdir(`${h}/aplspawn`).catch(() => [] as string[]))
      if (n.startsWith(prefix)) out.push(`${h}/aplspawn/${n}`);
  return out;
}
