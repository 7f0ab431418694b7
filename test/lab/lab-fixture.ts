// A lab for real tests: a private network + mount namespace, a temp dir holding workdir and
// machinesDir, a config file, and cleanup that kills every systemd-nspawn the test started (even
// when the test failed), restores the inotify limit, and proves nothing of the test is left.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { CLAIMS_DIR } from "../../src/image/loop-claims.js";
import { controlPathDir } from "../../src/lab/inventory.js";
import { ensureTestImage } from "../support/image.js";
import { CLI, type NsResult, type NsSnapshot, TestNamespace, tempDir } from "../support/ns.js";

/**
 * The image tests use: the cached GPT test image that `aplspawn image build` made
 * (test/support/image.ts builds it once, then reuses it).
 */
export async function testImage(): Promise<{ path: string; sha256: string; url: string }> {
  const i = await ensureTestImage();
  return { ...i, url: `file://${i.path}` };
}

const INOTIFY = "/proc/sys/fs/inotify/max_user_instances";

/**
 * Make the filter and nat tables exist before the baseline snapshot, as on any real host: the first
 * iptables command in a fresh namespace creates them and nothing removes them again. A throwaway
 * chain, created and deleted, does that and leaves no rule.
 */
async function initTables(ns: TestNamespace): Promise<void> {
  for (const table of ["filter", "nat"])
    for (const op of ["-N", "-X"]) {
      const r = await ns.run("iptables", ["-w", "-t", table, op, "APLSPAWN-TEST-INIT"]);
      assert.equal(r.exitCode, 0, r.stderr);
    }
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
  for (let i = 0; i < 100 && (await nspawnPids(path)).length > 0; i++)
    await new Promise((r) => setTimeout(r, 100));
  return pids.length;
}

/** Remove a directory tree bottom-up with rmdir (cgroupfs allows nothing else). */
async function rmdirTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }))
    if (e.isDirectory()) await rmdirTree(join(dir, e.name));
  await rmdir(dir);
}

/** What a lab test gets. */
export interface Lab {
  ns: TestNamespace;
  /** The temp dir (workdir, machinesDir, config, inventory). */
  dir: string;
  config: string;
  workdir: string;
  machinesDir: string;
  inventory: string;
  /** The test image (file and digest). */
  image: { path: string; sha256: string };
  /** Container names start with it. */
  prefix: string;
  /** Write the config (merged over the lab's defaults). */
  writeConfig(over?: ConfigOverrides): Promise<void>;
  /** Start the CLI inside the namespace (to kill it midway); argv includes -c. */
  spawnCli(args: string[], cwd: string): ChildProcess;
  /** fs.inotify.max_user_instances before the test. */
  inotifyBefore: number;
  /** Run the CLI inside the namespace with the lab's config. */
  cli(args: string[], env?: Record<string, string>): Promise<NsResult>;
  /** The namespace before the test changed anything (a test that mounts more may retake it). */
  before: NsSnapshot;
}

/** Sections of the config a test may change. */
export interface ConfigOverrides {
  lab?: string;
  network?: Record<string, unknown>;
  containers?: Record<string, unknown>;
  inventory?: Record<string, unknown>;
  image?: Record<string, unknown>;
}

/** Assert a CLI call exited 0 (showing its output when not). */
export function ok(r: NsResult, what: string): NsResult {
  assert.equal(r.exitCode, 0, `${what} exited ${r.exitCode}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/** Run fn with a fresh lab; always clean up, then prove the namespace and host hold nothing of it. */
export async function withLab(
  name: string,
  /** The subnet's third octet: each test has its own addresses (ssh and Ansible cache by address). */
  subnet: number,
  fn: (lab: Lab) => Promise<void>,
  base: ConfigOverrides = {},
): Promise<void> {
  const t = await tempDir(`aplspawn-${name}-`);
  const ns = await TestNamespace.create();
  const inotifyBefore = (await readFile(INOTIFY, "utf8")).trim();
  const image = await testImage();
  const workdir = join(t.path, "work");
  const machinesDir = join(t.path, "machines");
  const config = join(t.path, "aplspawn.yaml");
  const inventory = join(t.path, "inventory.txt");
  let failed = false;
  try {
    await initTables(ns);
    const before = await ns.snapshot();
    const lab: Lab = {
      ns,
      dir: t.path,
      config,
      workdir,
      machinesDir,
      inventory,
      image,
      prefix: `${name}-`,
      before,
      async writeConfig(over = {}) {
        const doc = {
          lab: over.lab ?? name,
          workdir,
          network: {
            bridge: `br-${name}`.slice(0, 15),
            address: `10.10.${subnet}.1/26`,
            ...base.network,
            ...over.network,
          },
          image: { url: image.url, ...base.image, ...over.image },
          containers: {
            count: 3,
            prefix: `${name}-`,
            ipRange: [`10.10.${subnet}.10`, `10.10.${subnet}.60`],
            machinesDir,
            readyTimeout: 90,
            ...base.containers,
            ...over.containers,
          },
          inventory: { file: inventory, ...base.inventory, ...over.inventory },
        };
        await writeFile(config, stringify(doc));
      },
      spawnCli: (args, cwd) => {
        const [c, a] = ns.wrap(process.execPath, [CLI, ...args]);
        return spawn(c, a, { cwd, stdio: "ignore" });
      },
      inotifyBefore: Number(inotifyBefore),
      cli: (args, env) => ns.cli(["-c", config, ...args], { ...(env ? { env } : {}), cwd: t.path }),
    };
    await lab.writeConfig();
    await fn(lab);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const killed = await killNspawns(t.path);
    const leftDirs = [...(await propagateDirs(`${name}-`)), ...(await cgroupsOf(`${name}-`))];
    const leftHolds = await holdsUnder(t.path);
    // Ansible's ssh master sockets of the lab (their directory goes with `run down`).
    const cp = controlPathDir(join(workdir, name));
    const leftCp = existsSync(cp) ? [cp] : [];
    await rm(cp, { recursive: true, force: true });
    for (const d of leftDirs)
      await (d.startsWith("/sys/fs/cgroup") ? rmdirTree(d) : rm(d, { recursive: true, force: true })).catch(
        () => undefined,
      );
    const loops = (await ns.run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(t.path));
    for (const l of loops) await ns.run("losetup", ["-d", l.split(":")[0] ?? ""]);
    const inotifyAfter = (await readFile(INOTIFY, "utf8")).trim();
    if (inotifyAfter !== inotifyBefore) await writeFile(INOTIFY, `${inotifyBefore}\n`);
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

/**
 * Prove zero residue of a lab: namespace state as before (links, addresses, iptables, ip_forward,
 * mounts), no mounts, loop devices, processes, cgroups or /run dirs of the test, no hold of the lab
 * on a host-wide setting, and the inotify limit as it was before the lab.
 */
export async function assertNoResidue(lab: Lab, what: string): Promise<void> {
  const now = await lab.ns.snapshot();
  for (const k of Object.keys(now) as (keyof NsSnapshot)[])
    assert.equal(now[k], lab.before[k], `${what}: ${k} differs from before`);
  assert.deepEqual(await nspawnPids(lab.dir), [], `${what}: systemd-nspawn processes are left`);
  const loops = (await lab.ns.run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(lab.dir));
  assert.deepEqual(loops, [], `${what}: loop devices are left`);
  const mounts = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET"])).stdout
    .split("\n")
    .filter((l) => l.includes(lab.dir));
  assert.deepEqual(mounts, [], `${what}: mounts are left`);
  assert.deepEqual(await cgroupsOf(lab.prefix), [], `${what}: container cgroups are left`);
  assert.deepEqual(
    await propagateDirs(lab.prefix),
    [],
    `${what}: systemd-nspawn's per-machine dirs are left`,
  );
  // The lab's ssh masters (Ansible's and status's) and their directory.
  const cp = controlPathDir(join(lab.workdir, lab.prefix.slice(0, -1)));
  assert.equal(existsSync(cp), false, `${what}: ${cp} is left`);
  assert.deepEqual(await processesNaming(cp), [], `${what}: ssh masters are left`);
  // test/run.mjs raises the limit for the whole suite, so a lab's hold rarely changes the value:
  // the record (/run/aplspawn-hold.*.json) naming the lab is what shows a hold left behind.
  assert.deepEqual(await holdsUnder(lab.dir), [], `${what}: holds on host-wide settings are left in /run`);
  assert.equal(
    Number((await readFile(INOTIFY, "utf8")).trim()),
    lab.inotifyBefore,
    `${what}: fs.inotify.max_user_instances differs from before the lab`,
  );
}

/** Processes whose command line names `text` ("pid: argv"). */
export async function processesNaming(text: string): Promise<string[]> {
  return [...(await processes())]
    .filter(([, argv]) => argv.some((a) => a.includes(text)))
    .map(([pid, argv]) => `${pid}: ${argv.join(" ")}`);
}

/**
 * Host-wide records that a lab under `dir` left: holds of settings (src/lab/holds.ts), "<record>: <lab>",
 * and loop device claims (src/image/loop-claims.ts).
 */
export async function holdsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of await readdir("/run").catch(() => [] as string[])) {
    // Records, and the temp files a writer killed midway would leave.
    if (!/^\.?aplspawn-hold\..*\.(json|tmp)$/.test(n)) continue;
    const text = await readFile(`/run/${n}`, "utf8").catch(() => "{}");
    let rec: { holders?: { lab: string }[] } = {};
    try {
      rec = JSON.parse(text);
    } catch {
      if (text.includes(dir)) out.push(`/run/${n}: cut short, names ${dir}`);
    }
    for (const h of rec.holders ?? []) if (h.lab.startsWith(dir)) out.push(`/run/${n}: ${h.lab}`);
  }
  // Loop device claims (src/image/loop-claims.ts) naming the lab's lower directory.
  for (const n of await readdir(CLAIMS_DIR).catch(() => [] as string[])) {
    const text = await readFile(join(CLAIMS_DIR, n), "utf8").catch(() => "");
    if (text.includes(dir)) out.push(`${CLAIMS_DIR}/${n}: ${text.trim()}`);
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
