// A systemd host for the real tests, on a machine without one: a Debian bookworm root with systemd,
// systemd-machined and what aplspawn needs, booted with systemd-nspawn (systemd PID 1 inside, its
// own D-Bus, machined bus-activated), aplspawn run inside it. The root is debootstrapped once and
// cached under TEST_CACHE; each boot runs on a throwaway overlay of it (--volatile=overlay). What
// overlayfs cannot stack on that overlay (the lab's upper layers) lives in host directories bound in.
// The outer container gets every capability, loop devices, a network namespace of its own, the
// host's Node (read-only: the image's own nodejs is 18) and this checkout (read-only).

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, lstat, mkdir, open, readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { ensureTestImage, lockedPrivate, TEST_CACHE } from "./image.js";
import { holdInotify } from "./inotify.js";
import { type NsResult, tempDir } from "./ns.js";
import { until } from "./wait.js";

/** What the systemd host's root holds (debootstrap --include). */
const PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "systemd-container",
  "iptables",
  "iproute2",
  "util-linux",
  "openssh-client",
  "squashfs-tools",
  "fdisk",
  "e2fsprogs",
  "procps",
  "psmisc",
  "ansible-core",
  // Without it ansible-core's python3-cryptography stays unconfigured under debootstrap.
  "python3-cffi-backend",
];
const SUITE = "bookworm";
const MIRROR = "http://deb.debian.org/debian";

const RECIPE = JSON.stringify({ suite: SUITE, mirror: MIRROR, packages: PACKAGES, arch: process.arch });
const ROOT_DIR = join(
  TEST_CACHE,
  `systemd-host-${createHash("sha256").update(RECIPE).digest("hex").slice(0, 16)}`,
);
const REPO = resolve(import.meta.dirname, "../../..");
const CGROUP_HIERARCHIES = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"];
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

let rootMemo: Promise<string> | undefined;

/** The cached root of the systemd host (debootstrapped on first use, about 2 minutes). */
export function systemdHostRoot(): Promise<string> {
  rootMemo ??= buildRoot().catch((e) => {
    rootMemo = undefined;
    throw e;
  });
  return rootMemo;
}

async function buildRoot(): Promise<string> {
  const root = join(ROOT_DIR, "root");
  const done = join(ROOT_DIR, "recipe.json");
  if ((await readFile(done, "utf8").catch(() => "")) === RECIPE) return root;
  await mkdir(TEST_CACHE, { recursive: true });
  // flock: one build at a time; the tree is built aside and renamed into place when complete.
  const script = `set -e
[ "$(cat "$1/recipe.json" 2>/dev/null)" = "$2" ] && exit 0
rm -rf "$1.tmp" "$1"; mkdir -p "$1.tmp"
debootstrap --variant=minbase --include="$3" ${SUITE} "$1.tmp/root" ${MIRROR} > "$1.tmp/debootstrap.log" 2>&1 \\
  || { tail -20 "$1.tmp/debootstrap.log" >&2; exit 1; }
printf %s "$2" > "$1.tmp/recipe.json"
mv "$1.tmp" "$1"`;
  const r = await lockedPrivate(
    `${ROOT_DIR}.lock`,
    script,
    [ROOT_DIR, RECIPE, PACKAGES.join(",")],
    30 * 60_000,
  );
  if (r.exitCode !== 0)
    throw new Error(`building the systemd host's root failed (exit ${r.exitCode}):\n${r.all}`);
  return root;
}

/** A booted systemd host. */
export interface SystemdHost {
  /** The host directory bound at /lab inside (config, image copy, workdir, inventory). */
  dir: string;
  /** The test image, copied into dir (its loop devices are this test's alone). */
  image: { path: string; sha256: string };
  /** Run a command inside: in the host's namespaces, in a transient scope of its own systemd. */
  run(argv: readonly string[], opts?: { asService?: boolean; timeoutMs?: number }): Promise<NsResult>;
  /** The aplspawn CLI inside, on /lab/aplspawn.yaml. */
  cli(args: readonly string[], opts?: { asService?: boolean }): Promise<NsResult>;
}

/**
 * Boot a systemd host, run fn, then power it off and prove that nothing of it is left on this
 * machine (processes, cgroups, loop devices, mounts, nspawn's /run entries).
 */
export async function withSystemdHost(
  name: string,
  fn: (h: SystemdHost) => Promise<void>,
  /** More systemd-nspawn options (a test's network bridge, its own binds). */
  more: readonly string[] = [],
): Promise<void> {
  const [root, image] = await Promise.all([systemdHostRoot(), ensureTestImage()]);
  const t = await tempDir(`aplspawn-${name}-`);
  const machine = `aplspawn-test-${name}`;
  const cgroups = CGROUP_HIERARCHIES.filter((h) => existsSync(`${h}/cgroup.procs`)).map(
    (h) => `${h}/aplspawn-test/${name}`,
  );
  // Inside, /proc/sys is read-only: the limit the lab's containers need must be there already.
  const releaseInotify = holdInotify();
  let outer: ChildProcess | undefined;
  let failed = false;
  try {
    const lab = join(t.path, "lab");
    for (const d of [lab, join(t.path, "aplspawn"), join(t.path, "machines")]) await mkdir(d);
    await copyFile(image.path, join(lab, "debian-bookworm.img"));
    for (const cg of cgroups) await mkdir(cg, { recursive: true });
    const log = await open(join(t.path, "outer.log"), "a");
    const nspawn = [
      `--machine=${machine}`,
      `--directory=${root}`,
      "--volatile=overlay",
      "--boot",
      "--register=no",
      "--keep-unit",
      "--link-journal=no",
      "--capability=all",
      "--private-network",
      "--bind=/dev/loop-control",
      `--bind=${join(t.path, "aplspawn")}:/var/lib/aplspawn`,
      `--bind=${join(t.path, "machines")}:/var/lib/machines`,
      `--bind=${lab}:/lab`,
      `--bind-ro=${process.execPath}:/usr/local/bin/node`,
      `--bind-ro=${REPO}`,
      ...more,
    ];
    // Started from cgroups of its own in each hierarchy systemd uses (it delegates them inside).
    outer = spawn(
      "sh",
      [
        "-c",
        'for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs"; done; exec systemd-nspawn "$@"',
        "sh",
        ...nspawn,
      ],
      {
        stdio: ["ignore", log.fd, log.fd],
        env: { ...process.env, CGROUPS: cgroups.join(" "), SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
      },
    );
    await log.close();
    const nspawnPid = outer.pid ?? -1;
    const leader = await until(30_000, 100, async () => {
      if (outer?.exitCode !== null) throw new Error(`the systemd host exited:\n${await tail(t.path)}`);
      const kids = (await readFile(`/proc/${nspawnPid}/task/${nspawnPid}/children`, "utf8").catch(() => ""))
        .split(/\s+/)
        .filter(Boolean);
      for (const k of kids)
        if ((await readFile(`/proc/${k}/comm`, "utf8").catch(() => "")).trim() === "systemd")
          return Number(k);
      return undefined;
    });
    const initScope = `${cgroups[0]}/payload/init.scope`;
    // The time limit is kept inside the host too (timeout(1)): a killed nsenter would leave the
    // process it started holding our pipes, and the test would wait on them forever.
    const enter = (argv: readonly string[], timeoutMs = 600_000) =>
      execa(
        "sh",
        [
          "-c",
          'echo $$ > "$SCOPE/cgroup.procs" && exec nsenter -t "$LEADER" -a -- env -i PATH="$IPATH" HOME=/root LANG=C.UTF-8 timeout --kill-after=5 "$LIMIT" "$@"',
          "sh",
          ...argv,
        ],
        {
          reject: false,
          timeout: timeoutMs + 15_000,
          env: {
            SCOPE: initScope,
            LEADER: String(leader),
            IPATH: PATH,
            LIMIT: `${Math.ceil(timeoutMs / 1000)}s`,
          },
          extendEnv: false,
        },
      );
    const booted = await until(60_000, 100, async () => {
      const r = await enter(["systemctl", "is-system-running"], 10_000);
      return ["running", "degraded"].includes(r.stdout.trim()) ? r.stdout.trim() : undefined;
    });
    assert.ok(booted, `the systemd host did not boot:\n${await tail(t.path)}`);
    // Loop device nodes: the kernel makes new ones on demand, but no udev makes their nodes inside.
    const mk = await enter([
      "sh",
      "-c",
      "for i in $(seq 0 255); do [ -e /dev/loop$i ] || mknod -m 0660 /dev/loop$i b 7 $i; done",
    ]);
    assert.equal(mk.exitCode, 0, mk.stderr);
    const h: SystemdHost = {
      dir: lab,
      image: { path: "/lab/debian-bookworm.img", sha256: image.sha256 },
      run: (argv, opts = {}) =>
        enter(
          [
            "systemd-run",
            "--quiet",
            "--collect",
            // A service outlives a killed systemd-run: systemd ends it at the same limit.
            ...(opts.asService
              ? [
                  "--wait",
                  "--pipe",
                  `--property=RuntimeMaxSec=${Math.ceil((opts.timeoutMs ?? 600_000) / 1000)}`,
                ]
              : ["--scope"]),
            "--",
            ...argv,
          ],
          opts.timeoutMs,
        ).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr })),
      cli: (args, opts) =>
        h.run(["node", join(REPO, "dist/cli/main.js"), "-c", "/lab/aplspawn.yaml", ...args], opts),
    };
    await fn(h);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const left = await powerOff(outer);
    const cgLeft: string[] = [];
    for (const cg of cgroups) if (!(await rmdirTree(cg))) cgLeft.push(cg);
    for (const h of CGROUP_HIERARCHIES) await rmdir(`${h}/aplspawn-test`).catch(() => undefined);
    const loops = await loopsUnder(t.path);
    for (const l of loops) await execa("losetup", ["-d", l], { reject: false });
    const propagate = `/run/systemd/nspawn/propagate/${machine}`;
    const propagateLeft = existsSync(propagate);
    await rm(propagate, { recursive: true, force: true });
    releaseInotify();
    const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .filter((l) => l.includes(t.path));
    await t.cleanup();
    if (!failed) {
      assert.equal(left, false, "the systemd host did not power off on SIGTERM");
      assert.deepEqual(cgLeft, [], "the systemd host's cgroups were left");
      assert.deepEqual(loops, [], "loop devices of the systemd host's lab were left attached");
      assert.deepEqual(mounts, [], "mounts of the systemd host were left");
      assert.equal(propagateLeft, false, `${propagate} was left`);
    }
  }
}

/**
 * The loop devices whose backing file lies under dir. Matched by device and inode: losetup shows a
 * backing file by the path the host saw (inside its binds), not by this machine's.
 */
async function loopsUnder(dir: string): Promise<string[]> {
  const files = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => []))
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.isFile()) {
        const st = await lstat(join(d, e.name));
        files.add(
          `${Math.floor(st.dev / 256) % 4096}:${(st.dev % 256) + (Math.floor(st.dev / 4096) & ~0xff)}:${st.ino}`,
        );
      }
  };
  await walk(dir);
  const out = (
    await execa("losetup", ["--list", "--json", "-O", "NAME,BACK-MAJ:MIN,BACK-INO"], { reject: false })
  ).stdout;
  const devices = (out ? JSON.parse(out).loopdevices : []) as Record<string, string | number | null>[];
  return devices
    .filter((l) => files.has(`${String(l["back-maj:min"]).replace(/\s+/g, "")}:${l["back-ino"]}`))
    .map((l) => String(l.name));
}

/**
 * Boot the systemd hosts at once, run fn with them all, power them all off (each proving it left
 * nothing); a host that fails to boot fails the whole.
 */
export async function withSystemdHosts(
  names: readonly string[],
  more: readonly string[],
  fn: (hosts: SystemdHost[]) => Promise<void>,
): Promise<void> {
  const hosts: SystemdHost[] = [];
  let release = () => {};
  const released = new Promise<void>((r) => {
    release = r;
  });
  let booted = () => {};
  let bootFailed: (e: unknown) => void = () => {};
  const allBooted = new Promise<void>((res, rej) => {
    booted = res;
    bootFailed = rej;
  });
  const runs = names.map((name, i) =>
    withSystemdHost(
      name,
      async (h) => {
        hosts[i] = h;
        if (hosts.filter(Boolean).length === names.length) booted();
        await released;
      },
      more,
    ).catch((e: unknown) => {
      bootFailed(e);
      throw e;
    }),
  );
  let failure: { e: unknown } | undefined;
  try {
    await allBooted;
    await fn(hosts);
  } catch (e) {
    failure = { e };
  } finally {
    release();
  }
  const ends = await Promise.allSettled(runs);
  if (failure) throw failure.e;
  for (const end of ends) if (end.status === "rejected") throw end.reason;
}

/** SIGTERM (a clean poweroff), SIGKILL after 20 s; whether it had to be killed. */
async function powerOff(outer: ChildProcess | undefined): Promise<boolean> {
  if (!outer || outer.exitCode !== null || outer.signalCode !== null) return false;
  const exited = new Promise((r) => outer.once("exit", r));
  outer.kill("SIGTERM");
  const timer = setTimeout(() => outer.kill("SIGKILL"), 20_000);
  await exited;
  clearTimeout(timer);
  return outer.signalCode === "SIGKILL";
}

/** Remove a cgroup tree bottom-up (cgroupfs allows rmdir alone); whether it is gone. */
async function rmdirTree(dir: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      for (const e of await readdir(dir, { withFileTypes: true }))
        if (e.isDirectory()) await rmdirTree(join(dir, e.name));
      await rmdir(dir);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return true;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return false;
}

const tail = async (dir: string) =>
  (await readFile(join(dir, "outer.log"), "utf8").catch(() => "")).split("\n").slice(-20).join("\n");

/** The lab's config inside the systemd host (two containers, the copied test image). */
export async function writeSystemdLabConfig(h: SystemdHost, lab: string, subnet: number): Promise<void> {
  const yaml = `lab: ${lab}
workdir: /lab/work
network: {bridge: br-${lab}, address: 10.10.${subnet}.1/26}
image: {url: "file://${h.image.path}", sha256: "${h.image.sha256}"}
containers: {count: 2, prefix: ${lab}-, ipRange: [10.10.${subnet}.10, 10.10.${subnet}.60], machinesDir: /var/lib/machines/${lab}, readyTimeout: 90}
inventory: {file: /lab/inventory.txt}
`;
  await writeFile(join(h.dir, "aplspawn.yaml"), yaml);
}
