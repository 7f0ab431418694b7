// aplspawn's benchmark: in one run, on one image, measures aplspawn against the bare-shell floor
// (bench/floor.sh, all containers at once) and the one-at-a-time baseline, plus start-up, status,
// the runner alone and getimage against curl. Prints medians and ratios, and writes
// bench/results.json and bench/plot.svg.
//
//   npm run bench                  # N = 1, 10, 30, 50; 3 runs each
//   npm run bench -- --n 1,10 --runs 1
//   npm run bench -- --parts labs --boot lab,full   # both boot profiles against the floor, alternating
//   npm run bench -- --parts startup,getimage   # labs, startup (and the runner alone), getimage
//   npm run bench -- --parts userns --n 10      # containers.privateUsers against without, alternating
//   npm run bench -- --parts reset --runs 3     # reset of one container of 3 against down --purge + up
//   npm run bench -- --parts capacity --n 10    # memory, pids, inotify per booted container as labs fill the host
//   npm run bench -- --parts soak --minutes 10  # 4 labs of 2 containers in rounds: rounds per minute, failures
//
// aplspawn's labs share one image store, where the image already is (a warm-up lab, not measured,
// verifies its checksum once; its stamp spares the later labs the hashing).
// Run as root on a quiet machine. Each lab runs in its own private network+mount namespace;
// traffic goes only to the namespace's own containers and loopback.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { ensureTestImage, startServer } from "../dist/test/support/image.js";
import { holdInotify } from "../dist/test/support/inotify.js";
import { withLab } from "../dist/test/support/lab.js";
import { CLI, TestNamespace } from "../dist/test/support/ns.js";
import { soakLabs, soak as soakRounds } from "../dist/test/support/soak.js";
import { benchLabConfig } from "./lab-config.mjs";

const here = import.meta.dirname;
const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1,10,30,50" },
    runs: { type: "string", default: "3" },
    parts: { type: "string", default: "labs,startup,getimage" },
    minutes: { type: "string", default: "5" },
    // The labs part's boot profiles (containers.boot): `lab,full` measures both, alternating.
    boot: { type: "string", default: "lab" },
  },
});
const parts = new Set(values.parts.split(","));
const sizes = values.n.split(",").map(Number);
const runs = Number(values.runs);
const profiles = values.boot.split(",");

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const time = (f) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const log = (s) => process.stderr.write(`${s}\n`);
const failures = [];

const image = await ensureTestImage();
log(`image: ${image.path}`);

// The image store all labs of the bench share: the image is already in the store (verified once,
// by the warm-up below, and known by its stamp after), as a user's second lab finds it.
const store = mkdtempSync(join(tmpdir(), "aplspawn-bench-store-"));
let labs = 0;

// A lab of n containers in a fresh namespace, its config written: fn gets `run(...args)` (the CLI
// with that config, timed; a failure throws); the namespace and the lab's files go after.
async function withBenchLab(n, containers, fn) {
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-bench-"));
  const ns = await TestNamespace.create();
  const lab = `bench${++labs}`;
  try {
    const cfg = join(dir, "lab.yaml");
    writeFileSync(
      cfg,
      benchLabConfig({ lab, store, dir, image, n, bridge: "bnbr0", chain: "BENCH", containers }),
    );
    const run = async (...args) => {
      const t0 = performance.now();
      const r = await ns.cli(["-c", cfg, ...args]);
      if (r.exitCode !== 0) throw new Error(`${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
      return performance.now() - t0;
    };
    return await fn(run);
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
    // What down keeps for the lab's next up (upper layers, keys): the next lab is a new one.
    rmSync(join(store, lab), { recursive: true, force: true });
  }
}

// A lab of n containers: returns {upMs, downMs, statusMs, statusColdMs}.
function aplspawnLab(n, measureStatus, containers = {}) {
  return withBenchLab(n, containers, async (run) => {
    const upMs = await run("run", "up");
    let statusMs;
    let statusColdMs;
    if (measureStatus) {
      // The first status logs in to each container and leaves an ssh master (ControlPersist);
      // the next ones run over those masters, as status does for a minute after any status.
      const ts = [];
      for (let i = 0; i < 4; i++) ts.push(await run("status"));
      statusColdMs = ts[0];
      statusMs = median(ts.slice(1));
    }
    // A lab with its own user id ranges gives them back (its upper layers go): --purge.
    const downMs = await run("run", "down", ...(containers.privateUsers ? ["--purge"] : []));
    return { upMs, downMs, statusMs, statusColdMs };
  });
}

// One container of a running lab of n back to the image's clean state: `run reset --only` it,
// against what that took before reset (`run down --purge` + `run up` of the whole lab), alternating
// in the same lab. Returns {resetMs, downPurgeUpMs} (medians).
function resetLab(n) {
  return withBenchLab(n, {}, async (run) => {
    await run("run", "up");
    const r = { reset: [], downPurgeUp: [] };
    for (let i = 0; i < runs; i++) {
      r.reset.push(await run("run", "reset", "--only", "aplspawn1"));
      r.downPurgeUp.push((await run("run", "down", "--purge")) + (await run("run", "up")));
      log(`N=${n} run ${i + 1}: reset ${r.reset[i] | 0} ms; down --purge + up ${r.downPurgeUp[i] | 0} ms`);
    }
    await run("run", "down", "--purge");
    return { resetMs: median(r.reset), downPurgeUpMs: median(r.downPurgeUp) };
  });
}

function floor(n, mode) {
  const work = mkdtempSync(join(tmpdir(), "aplspawn-floor-"));
  rmSync(work, { recursive: true });
  let out;
  try {
    out = execFileSync(
      "unshare",
      [
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        "bash",
        "-c",
        'ip link set lo up && exec "$@"',
        "x",
        resolve(here, "floor.sh"),
        image.path,
        String(n),
        mode,
        work,
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
  } catch (e) {
    // A run of the floor that failed (a container that never answered) is left out of the medians.
    failures.push(`floor N=${n} ${mode}: ${e.message}`);
    log(`floor N=${n} ${mode} failed: ${e.message}`);
    return undefined;
  }
  return JSON.parse(out.trim().split("\n").pop());
}

const results = { date: new Date().toISOString(), parts: [...parts], runs, sizes: {}, other: {} };
// Booted containers need more inotify instances than Debian's 128: held for the whole bench, shared
// with test runs and other benches alive beside it (the last to end puts the limit back).
process.on("exit", holdInotify());
if (parts.has("labs")) {
  // Warm-up, not measured: the image's checksum is verified once and stamped in the store.
  await aplspawnLab(1, false);
  for (const n of sizes) {
    const r = {
      floorUp: [],
      floorDown: [],
      up: [],
      down: [],
      status: [],
      statusCold: [],
      upFull: [],
      downFull: [],
    };
    // The contestants of a run, in an order that turns by one each run: the run right after
    // another's teardown (the kernel still freeing its namespace) is slower, measured up to
    // 0.9 s at N = 1; each contestant takes that place in turn.
    const contestants = [
      async () => {
        const f = floor(n, "all");
        if (f) {
          r.floorUp.push(f.upMs);
          r.floorDown.push(f.downMs);
        }
        return `floor up ${f?.upMs} ms, down ${f?.downMs} ms`;
      },
      ...profiles.map((boot) => async () => {
        const a = await aplspawnLab(n, boot === "lab" && (n === 1 || n === Math.max(...sizes)), { boot });
        const [up, down] = boot === "lab" ? ["up", "down"] : ["upFull", "downFull"];
        r[up].push(a.upMs);
        r[down].push(a.downMs);
        if (a.statusMs !== undefined) r.status.push(a.statusMs);
        if (a.statusColdMs !== undefined) r.statusCold.push(a.statusColdMs);
        return `aplspawn (boot: ${boot}) up ${a.upMs | 0} ms, down ${a.downMs | 0} ms`;
      }),
    ];
    for (let i = 0; i < runs; i++) {
      const said = [];
      for (let k = 0; k < contestants.length; k++)
        said.push(await contestants[(i + k) % contestants.length]());
      log(`N=${n} run ${i + 1}: ${said.join("; ")}`);
    }
    if (n === 10) {
      r.serialUp = [];
      for (let i = 0; i < runs; i++) {
        const f = floor(n, "serial");
        if (f) r.serialUp.push(f.upMs);
      }
    }
    results.sizes[n] = Object.fromEntries(
      Object.entries(r)
        .filter(([, v]) => v.length)
        .map(([k, v]) => [k, median(v)]),
    );
  }
}
if (parts.has("userns")) {
  // containers.privateUsers against the default, alternating, same image and store.
  await aplspawnLab(1, false);
  for (const n of sizes) {
    const r = { up: [], upUserns: [] };
    for (let i = 0; i < runs; i++) {
      const a = await aplspawnLab(n, false);
      const u = await aplspawnLab(n, false, { privateUsers: true });
      r.up.push(a.upMs);
      r.upUserns.push(u.upMs);
      log(`N=${n} run ${i + 1}: up ${a.upMs | 0} ms; with privateUsers ${u.upMs | 0} ms`);
    }
    const [m, mu] = [median(r.up), median(r.upUserns)];
    results.other[`userns${n}`] = { upMs: m, upUsernsMs: mu, ratio: mu / m };
    log(
      `N=${n}: up ${(m / 1000).toFixed(2)} s, privateUsers ${(mu / 1000).toFixed(2)} s: ${(mu / m).toFixed(2)}x`,
    );
  }
}
if (parts.has("reset")) {
  const r = await resetLab(3);
  results.other.reset3 = { ...r, ratio: r.resetMs / r.downPurgeUpMs };
}
if (parts.has("capacity")) {
  await aplspawnLab(1, false);
  results.other.capacity = await capacity(Math.max(...sizes));
}
if (parts.has("soak")) {
  results.other.soak = await soak(Number(values.minutes));
}
rmSync(store, { recursive: true, force: true });

if (parts.has("startup")) {
  // Start-up: `aplspawn --version` against `node -e 0`.
  const node = process.execPath;
  const startups = (args) => median(Array.from({ length: 15 }, () => time(() => execFileSync(node, args))));
  results.other.versionMs = startups([CLI, "--version"]);
  results.other.nodeMs = startups(["-e", "0"]);
  // The runner alone.
  results.other.runner1000Ms = median(
    Array.from(
      { length: 3 },
      () =>
        JSON.parse(execFileSync(node, [resolve(here, "runner-noop.mjs"), "1000"], { encoding: "utf8" })).ms,
    ),
  );
}
// getimage over loopback HTTP against curl, same file, same namespace. The file is large enough
// (640 MB of random bytes, made once and kept under /var/cache) that start-up does not dominate.
if (parts.has("getimage")) {
  const big = bigFile();
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-bench-dl-"));
  const ns = await TestNamespace.create();
  try {
    const srv = await startServer(ns, resolve(big.path, ".."));
    const url = srv.url(big.path.split("/").pop());
    const cfg = join(dir, "dl.yaml");
    writeFileSync(
      cfg,
      stringify({ lab: "dl", workdir: join(dir, "work"), image: { url, sha256: big.sha256 } }),
    );
    // Three ways to fetch the same file, each timed from start to end of its command.
    const fetchAll = async () => {
      const t = { get: [], curl: [], drain: [] };
      for (let i = 0; i < 3; i++) {
        rmSync(join(dir, "work"), { recursive: true, force: true });
        const t0 = performance.now();
        const r = await ns.cli(["-c", cfg, "run", "getimage"]);
        t.get.push(performance.now() - t0);
        if (r.exitCode !== 0) throw new Error(`getimage failed: ${r.stdout}${r.stderr}`);
        const t1 = performance.now();
        const c = await ns.run("curl", ["-sf", "-o", join(dir, "curl.img"), url]);
        t.curl.push(performance.now() - t1);
        if (c.exitCode !== 0) throw new Error(`curl failed: ${c.stderr}`);
        rmSync(join(dir, "curl.img"), { force: true });
        const d = await ns.run(process.execPath, [resolve(here, "undici-drain.mjs"), url]);
        if (d.exitCode !== 0) throw new Error(`undici drain failed: ${d.stderr}`);
        t.drain.push(JSON.parse(d.stdout).ms);
      }
      const mbps = (ms) => big.bytes / 1e6 / (median(ms) / 1000);
      return { getimageMBps: mbps(t.get), curlMBps: mbps(t.curl), undiciDrainMBps: mbps(t.drain) };
    };
    results.other.getimageBytes = big.bytes;
    // Loopback at full speed: CPU-bound (server, client and kernel share two cores).
    results.other.loopback = await fetchAll();
    // The same with the namespace's loopback shaped to 1 Gbit/s (tc tbf), as an image server
    // across a gigabit link would be: network-bound.
    const tc = await ns.run("tc", [
      "qdisc",
      "add",
      "dev",
      "lo",
      "root",
      "tbf",
      "rate",
      "1gbit",
      "burst",
      "1mb",
      "latency",
      "50ms",
    ]);
    if (tc.exitCode !== 0) throw new Error(`tc failed: ${tc.stderr}`);
    results.other.gigabit = await fetchAll();
    await srv.stop();
  } finally {
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * N labs of one container each, one namespace, one store, brought up one after another as a CI host
 * fills: after each, the time its `run up` took, and what the booted containers take from their
 * cgroups. Memory is charged to the memory cgroup of the process that starts a container (cgroup v1:
 * aplspawn moves containers in the systemd hierarchies only), so the bench moves itself into a memory
 * cgroup of its own and reads it (rss + shmem: what cannot be reclaimed; usage: with page cache).
 * Tasks (processes and threads) and inotify instances are counted in each container's own cgroup.
 */
async function capacity(n) {
  const memRoot = "/sys/fs/cgroup/memory";
  const ownMem = readFileSync("/proc/self/cgroup", "utf8").match(/^\d+:memory:(.*)$/m)?.[1];
  const cg = join(memRoot, `aplspawn-bench-capacity-${process.pid}`);
  const v1 = ownMem !== undefined && existsSync(memRoot);
  if (v1) {
    mkdirSync(cg);
    writeFileSync(join(cg, "cgroup.procs"), String(process.pid));
  }
  const memStat = () => {
    if (!v1) return undefined;
    const st = Object.fromEntries(
      readFileSync(join(cg, "memory.stat"), "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(" "))
        .map(([k, v]) => [k, Number(v)]),
    );
    return {
      usage: Number(readFileSync(join(cg, "memory.usage_in_bytes"), "utf8")),
      anon: st.total_rss + st.total_shmem,
      mapped: st.total_mapped_file,
    };
  };
  const unified = "/sys/fs/cgroup/unified/aplspawn";
  const procsIn = (dir) => {
    const out = [];
    const walk = (d) => {
      for (const l of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n")) if (l) out.push(Number(l));
      for (const e of execFileSync("find", [d, "-mindepth", "1", "-maxdepth", "1", "-type", "d"], {
        encoding: "utf8",
      }).split("\n"))
        if (e) walk(e);
    };
    walk(dir);
    return out;
  };
  const tasksOf = (pids) =>
    pids.reduce(
      (a, p) =>
        a +
        (existsSync(`/proc/${p}/task`)
          ? execFileSync("ls", [`/proc/${p}/task`], { encoding: "utf8" })
              .split("\n")
              .filter(Boolean).length
          : 0),
      0,
    );
  const inotifyOf = (pids) => {
    let k = 0;
    for (const p of pids)
      try {
        for (const fd of execFileSync("ls", [`/proc/${p}/fd`], { encoding: "utf8" })
          .split("\n")
          .filter(Boolean))
          try {
            if (
              execFileSync("readlink", [`/proc/${p}/fd/${fd}`], { encoding: "utf8" }).trim() ===
              "anon_inode:inotify"
            )
              k++;
          } catch {}
      } catch {}
    return k;
  };
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-bench-cap-"));
  const ns = await TestNamespace.create();
  const cfgs = [];
  const rows = [];
  try {
    const before = memStat();
    for (let i = 1; i <= n; i++) {
      const cfg = join(dir, `cap${i}.yaml`);
      writeFileSync(
        cfg,
        stringify({
          lab: `cap${i}`,
          workdir: store,
          network: { bridge: `capbr${i}`, address: `10.30.${i}.1/24`, chain: `BCAP${i}` },
          image: { url: `file://${image.path}`, sha256: image.sha256 },
          containers: { count: 1, prefix: `cap${i}-`, machinesDir: join(dir, "machines") },
          inventory: { file: join(dir, `inventory${i}.txt`), ping: false },
        }),
      );
      cfgs.push(cfg);
      const t0 = performance.now();
      const r = await ns.cli(["-c", cfg, "run", "up"]);
      const upMs = performance.now() - t0;
      if (r.exitCode !== 0) {
        failures.push(`capacity: lab ${i} up failed:\n${r.stdout}\n${r.stderr}`);
        log(`lab ${i}: up failed\n${r.stderr}`);
        break;
      }
      const names = execFileSync("ls", [unified], { encoding: "utf8" })
        .split("\n")
        .filter((x) => /^cap\d+-/.test(x));
      const pids = names.flatMap((x) => procsIn(join(unified, x)));
      const m = memStat();
      const row = {
        containers: i,
        upMs,
        tasks: tasksOf(pids),
        inotify: inotifyOf(pids),
        ...(m && before
          ? {
              anonBytes: m.anon - before.anon,
              mappedBytes: m.mapped - before.mapped,
              usageBytes: m.usage - before.usage,
            }
          : {}),
      };
      rows.push(row);
      log(
        `${i} containers: up ${(upMs / 1000).toFixed(2)} s; per container ${(row.tasks / i).toFixed(1)} tasks, ${(row.inotify / i).toFixed(1)} inotify${row.anonBytes === undefined ? "" : `, ${(row.anonBytes / i / 1048576).toFixed(1)} MiB rss+shmem, ${(row.mappedBytes / i / 1048576).toFixed(1)} MiB mapped files, ${(row.usageBytes / i / 1048576).toFixed(1)} MiB usage`}`,
      );
    }
  } finally {
    for (const cfg of cfgs.reverse()) {
      const r = await ns.cli(["-c", cfg, "run", "down", "--purge"]);
      if (r.exitCode !== 0) failures.push(`capacity: down of ${cfg} failed:\n${r.stderr}`);
    }
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
    for (let i = 1; i <= n; i++) rmSync(join(store, `cap${i}`), { recursive: true, force: true });
    if (v1) {
      writeFileSync(join(memRoot, ownMem, "cgroup.procs"), String(process.pid));
      try {
        execFileSync("rmdir", [cg]);
      } catch {}
    }
  }
  return rows;
}

/**
 * The soak of the suite (test/reliability/soak.test.ts, test/support/soak.ts) for `minutes`: 4 labs
 * of 2 containers on one workdir and image, rounds of up, reset, provision, down --purge until the
 * time is up, lab 4's first up failed midway. The fixture proves nothing is left at the end.
 */
async function soak(minutes) {
  const labs = 4;
  let out;
  await withLab("bsoak0", 120, async (lab) => {
    const ls = await soakLabs(lab, labs, 120);
    const t0 = performance.now();
    const r = await soakRounds(lab, ls, {
      until: Date.now() + minutes * 60_000,
      fault: { lab: labs - 1, round: 1 },
    });
    const took = (performance.now() - t0) / 60_000;
    out = { labs, minutes: took, rounds: r.rounds, failures: [...r.failures, ...r.faultProblems] };
    log(`soak: ${r.rounds} rounds in ${took.toFixed(1)} min, ${out.failures.length} failures`);
  });
  return out;
}

/** A 640 MB file of random bytes and its SHA-256, made once under /var/cache/aplspawn-bench. */
function bigFile() {
  const dir = "/var/cache/aplspawn-bench";
  const path = join(dir, "big-640M.img");
  const sum = `${path}.sha256`;
  const bytes = 640 * 1048576;
  if (!existsSync(sum) || !existsSync(path) || statSync(path).size !== bytes) {
    mkdirSync(dir, { recursive: true });
    log(`making ${path} (640 MB of random bytes)`);
    execFileSync("head", ["-c", String(bytes), "/dev/urandom"], {
      stdio: ["ignore", openSync(path, "w"), "inherit"],
    });
    writeFileSync(sum, execFileSync("sha256sum", [path], { encoding: "utf8" }).split(" ")[0]);
  }
  return { path, bytes, sha256: readFileSync(sum, "utf8").trim() };
}

// Report.
const fmt = (ms) => (ms === undefined ? "—" : `${(ms / 1000).toFixed(2)} s`);
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : "—");
const full = Object.values(results.sizes).some((r) => r.upFull !== undefined);
const rows = [
  `| N | floor up | aplspawn up | up / floor | floor down | aplspawn down | down / floor |${full ? " up, boot: full | up (full) / floor | down, boot: full | down (full) / floor |" : ""} one at a time | one-at-a-time / aplspawn |`,
  `|---|---|---|---|---|---|---|${full ? "---|---|---|---|" : ""}---|---|`,
];
for (const [n, r] of Object.entries(results.sizes))
  rows.push(
    `| ${n} | ${fmt(r.floorUp)} | ${fmt(r.up)} | ${ratio(r.up, r.floorUp)} | ${fmt(r.floorDown)} | ${fmt(r.down)} | ${ratio(r.down, r.floorDown)} |${full ? ` ${fmt(r.upFull)} | ${ratio(r.upFull, r.floorUp)} | ${fmt(r.downFull)} | ${ratio(r.downFull, r.floorDown)} |` : ""} ${fmt(r.serialUp)} | ${ratio(r.serialUp, r.up)} |`,
  );
const o = results.other;
const statusN = Object.entries(results.sizes).filter(([, r]) => r.status !== undefined);
const lines = [
  ...(parts.has("labs")
    ? [
        ...rows,
        "",
        `status over kept ssh masters: ${statusN.map(([n, r]) => `N=${n} ${fmt(r.status)}`).join(", ")}${statusN.length === 2 ? ` (ratio ${ratio(statusN[1][1].status, statusN[0][1].status)})` : ""}`,
        `status, first after up (one login each): ${statusN.map(([n, r]) => `N=${n} ${fmt(r.statusCold)}`).join(", ")}${statusN.length === 2 ? ` (ratio ${ratio(statusN[1][1].statusCold, statusN[0][1].statusCold)})` : ""}`,
      ]
    : []),
  ...(parts.has("reset")
    ? [
        `reset of one container at N=3: ${fmt(o.reset3.resetMs)}; down --purge + up of the lab: ${fmt(o.reset3.downPurgeUpMs)}: ${ratio(o.reset3.resetMs, o.reset3.downPurgeUpMs)}`,
      ]
    : []),
  ...(parts.has("capacity")
    ? [
        "| containers | run up of the last | tasks / container | inotify / container | rss+shmem / container | mapped files / container | usage / container |",
        "|---|---|---|---|---|---|---|",
        ...o.capacity.map(
          (r) =>
            `| ${r.containers} | ${fmt(r.upMs)} | ${(r.tasks / r.containers).toFixed(1)} | ${(r.inotify / r.containers).toFixed(1)} | ${r.anonBytes === undefined ? "—" : `${(r.anonBytes / r.containers / 1048576).toFixed(1)} MiB`} | ${r.mappedBytes === undefined ? "—" : `${(r.mappedBytes / r.containers / 1048576).toFixed(1)} MiB`} | ${r.usageBytes === undefined ? "—" : `${(r.usageBytes / r.containers / 1048576).toFixed(1)} MiB`} |`,
        ),
      ]
    : []),
  ...(parts.has("soak")
    ? [
        `soak, ${o.soak.labs} labs of 2 containers for ${o.soak.minutes.toFixed(1)} min: ${o.soak.rounds} rounds (up, reset, provision, down), ${(o.soak.rounds / o.soak.minutes).toFixed(2)} rounds/min, ${o.soak.failures.length} failed commands`,
        ...o.soak.failures.map((f) => `  ${f.split("\n")[0]}`),
      ]
    : []),
  ...(parts.has("startup")
    ? [
        `aplspawn --version ${o.versionMs.toFixed(0)} ms, node -e 0 ${o.nodeMs.toFixed(0)} ms: +${(o.versionMs - o.nodeMs).toFixed(0)} ms`,
        `runner alone, 1,000 journaled no-op tasks: ${o.runner1000Ms} ms`,
      ]
    : []),
  ...(parts.has("getimage")
    ? [
        ...["loopback", "gigabit"].flatMap((k) => {
          const g = o[k];
          const what = k === "loopback" ? "over loopback" : "over loopback shaped to 1 Gbit/s";
          return [
            `getimage of ${(o.getimageBytes / 1048576).toFixed(0)} MiB ${what}: ${g.getimageMBps.toFixed(0)} MB/s, curl ${g.curlMBps.toFixed(0)} MB/s: ${(g.getimageMBps / g.curlMBps).toFixed(2)}× curl`,
            `  undici request() drained to nothing (no write, no hash), Node's own ceiling: ${g.undiciDrainMBps.toFixed(0)} MB/s = ${(g.undiciDrainMBps / g.curlMBps).toFixed(2)}× curl`,
          ];
        }),
      ]
    : []),
];
if (failures.length) lines.push("", "failed runs (left out of the medians):", ...failures);
console.log(lines.join("\n"));
writeFileSync(resolve(here, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
if (parts.has("labs")) writeFileSync(resolve(here, "plot.svg"), plot(results));

// Time against N for the floor, aplspawn and (where measured) one at a time.
function plot(res) {
  const ns = Object.keys(res.sizes).map(Number);
  const series = [
    ["floor (all at once)", "#888", (r) => r.floorUp],
    ["aplspawn run up", "#d33", (r) => r.up],
    ["one at a time", "#36c", (r) => r.serialUp],
  ];
  const maxN = Math.max(...ns, 1);
  const maxT = Math.max(...ns.flatMap((n) => series.map(([, , f]) => f(res.sizes[n]) ?? 0))) / 1000 || 1;
  const W = 480;
  const H = 300;
  const x = (n) => 50 + (n / maxN) * (W - 70);
  const y = (s) => H - 40 - (s / maxT) * (H - 70);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<line x1="50" y1="${H - 40}" x2="${W - 20}" y2="${H - 40}" stroke="black"/><line x1="50" y1="30" x2="50" y2="${H - 40}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 10}" text-anchor="middle">containers (N)</text>`,
    `<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">seconds until all answer ssh</text>`,
    ...ns.map((n) => `<text x="${x(n)}" y="${H - 26}" text-anchor="middle">${n}</text>`),
    ...[0, maxT / 2, maxT].map(
      (s) => `<text x="44" y="${y(s) + 4}" text-anchor="end">${s.toFixed(1)}</text>`,
    ),
  ];
  series.forEach(([name, color, f], i) => {
    const pts = ns.filter((n) => f(res.sizes[n]) !== undefined).map((n) => [x(n), y(f(res.sizes[n]) / 1000)]);
    if (pts.length > 1)
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => p.join(",")).join(" ")}"/>`,
      );
    for (const [px, py] of pts) parts.push(`<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>`);
    parts.push(
      `<rect x="60" y="${36 + i * 16}" width="10" height="10" fill="${color}"/><text x="76" y="${45 + i * 16}">${name}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
