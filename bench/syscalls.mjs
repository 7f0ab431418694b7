// What `run up` and `run down` of a lab of N containers cost the host, counted rather than timed
// (so a busy machine does not blur it): the processes aplspawn spawns (execve), the fsyncs and
// fdatasyncs it makes, and its CPU time (user + system, its own and its reaped children's, from
// /usr/bin/time). The containers' own processes (everything below systemd-nspawn) are counted
// apart. A fresh lab each run, on the cached test image, in a private namespace. Run as root.
//
//   node bench/syscalls.mjs --n 1 --runs 2 [--list]   # --list: every spawned command, by count
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureTestImage } from "../dist/test/support/image.js";
import { CLI } from "../dist/test/support/ns.js";
import { median, withBenchLab } from "./lab-config.mjs";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1" },
    runs: { type: "string", default: "2" },
    list: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const runs = Number(values.runs);

const SYNCS = ["fsync", "fdatasync", "sync_file_range", "syncfs"];

// Run argv under `perf record` inside ns, with the kernel's tracepoints for fork, exec, exit and
// the sync calls, inherited by every process it starts. Not strace: ptrace follows the containers
// too, and their sshd's seccomp sandbox fails under it (the run never gets ssh).
async function traced(ns, argv) {
  const data = join(tmpdir(), `aplspawn-perf-${process.pid}-${Date.now()}.data`);
  const events = [
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    ...SYNCS.map((c) => `syscalls:sys_enter_${c}`),
  ];
  const execLog = `${data}.execs`;
  const r = await ns.run(
    "perf",
    ["record", "-q", "-o", data, ...events.flatMap((e) => ["-e", e]), "--", ...argv],
    {
      env: {
        NODE_OPTIONS: `--import=${join(import.meta.dirname, "exec-log.mjs")}`,
        APLSPAWN_EXEC_LOG: execLog,
      },
    },
  );
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed under perf:\n${r.stdout}\n${r.stderr}`);
  const script = await ns.run("perf", ["script", "-i", data, "-F", "pid,tid,time,event,trace"]);
  let spawned = [];
  try {
    spawned = readFileSync(execLog, "utf8")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  } catch {}
  if (!process.env.KEEP_LOG) rmSync(data, { force: true });
  else console.error(`perf data: ${data}`);
  rmSync(execLog, { force: true });
  return { ...parse(script.stdout), spawned };
}

// What perf recorded: the processes exec'd outside the containers, and the sync calls.
function parse(text) {
  const parent = new Map();
  const prog = new Map(); // pid -> file it exec'd
  const start = new Map();
  const life = new Map();
  const syncs = new Map();
  let root;
  for (const line of text.split("\n")) {
    const m = line.match(/^\s*(\d+)\/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$/);
    if (!m) continue;
    const pid = Number(m[1]);
    const tid = Number(m[2]);
    const t = Number(m[3]);
    const ev = m[4];
    const rest = m[5];
    if (ev === "sched:sched_process_fork") {
      const c = Number(rest.match(/child_pid=(\d+)/)[1]);
      root ??= pid;
      parent.set(c, pid);
    } else if (ev === "sched:sched_process_exec") {
      root ??= pid;
      prog.set(pid, [rest.match(/filename=(\S+)/)[1]]);
      start.set(pid, t);
    } else if (ev === "sched:sched_process_exit") {
      if (start.has(tid) && tid === pid) life.set(pid, t - start.get(pid));
    } else if (ev.startsWith("syscalls:")) syncs.set(pid, (syncs.get(pid) ?? 0) + 1);
  }
  // A container's processes: below a systemd-nspawn.
  const inContainer = (pid) => {
    for (let p = pid; parent.has(p); p = parent.get(p))
      if (prog.get(parent.get(p))?.[0]?.endsWith("systemd-nspawn")) return true;
    return false;
  };
  const execs = [];
  let containerExecs = 0;
  for (const [pid, words] of prog) {
    if (pid === root) continue;
    if (inContainer(pid)) containerExecs++;
    else execs.push({ pid, words, ms: (life.get(pid) ?? Number.NaN) * 1000 });
  }
  let fsyncs = 0;
  let containerFsyncs = 0;
  for (const [pid, k] of syncs) {
    if (inContainer(pid)) containerFsyncs += k;
    else fsyncs += k;
  }
  return { execs, containerExecs, fsyncs, containerFsyncs };
}

// CPU of argv inside ns: /usr/bin/time's elapsed, user and system seconds.
async function timed(ns, argv) {
  const r = await ns.run("/usr/bin/time", ["-f", "TIME %e %U %S", ...argv]);
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  const [, e, u, s] = r.stderr.match(/TIME ([\d.]+) ([\d.]+) ([\d.]+)/).map(Number);
  return { wall: e, cpu: u + s };
}

const label = (w) => {
  const base = w[0]?.split("/").pop() ?? "?";
  const sub = w.slice(1).find((a) => !a.startsWith("-")) ?? "";
  return base === "iptables" || base === "ip" || base === "ip6tables"
    ? `${base} ${w.slice(1, 4).join(" ")}`
    : `${base} ${sub}`.trim();
};

const image = await ensureTestImage();
const store = mkdtempSync(join(tmpdir(), "aplspawn-syscalls-store-"));
const out = { up: [], down: [] };
try {
  for (let i = 0; i <= runs; i++) {
    for (const mode of i === 0 ? ["time"] : ["time", "strace"]) {
      const lab = { lab: `sysc${i}${mode[0]}`, store, image, n, bridge: "scbr0", chain: "SYSC" };
      await withBenchLab(lab, async ({ ns, cfg }) => {
        for (const op of ["up", "down"]) {
          const argv = [process.execPath, CLI, "-c", cfg, "--json", "run", op];
          // The first run is a warm-up (it verifies the image once).
          if (i === 0) {
            await timed(ns, argv);
            continue;
          }
          if (mode === "time") out[op].push({ ...(await timed(ns, argv)) });
          else Object.assign(out[op][out[op].length - 1], await traced(ns, argv));
        }
      });
    }
  }
} finally {
  rmSync(store, { recursive: true, force: true });
}
for (const op of ["up", "down"]) {
  const rs = out[op];
  const f = (k) => median(rs.map((r) => (typeof r[k] === "number" ? r[k] : r[k].length)));
  console.log(
    `run ${op} of ${n}: execs ${f("execs")} (containers' own ${f("containerExecs")}), fsyncs ${f("fsyncs")} ` +
      `(containers' ${f("containerFsyncs")}), CPU ${f("cpu").toFixed(2)} s, wall ${f("wall").toFixed(2)} s ` +
      `(medians of ${rs.length}; CPU and wall from untraced runs)`,
  );
  if (values.list) {
    const by = new Map();
    for (const e of rs[rs.length - 1].spawned) {
      const k = label(e.argv);
      const b = by.get(k) ?? { count: 0, ms: 0 };
      b.count++;
      b.ms += e.ms;
      by.set(k, b);
    }
    console.log(`  spawned by the CLI itself: ${rs[rs.length - 1].spawned.length}`);
    for (const [k, b] of [...by].sort((a, b) => b[1].count - a[1].count))
      console.log(`  ${String(b.count).padStart(4)} × ${k}  (${(b.ms / b.count).toFixed(0)} ms each)`);
    const other = new Map();
    for (const e of rs[rs.length - 1].execs) other.set(e.words[0], (other.get(e.words[0]) ?? 0) + 1);
    console.log(
      `  every exec outside the containers, by file: ${[...other]
        .sort((a, b) => b[1] - a[1])
        .map(([f, k]) => `${k} ${f}`)
        .join(", ")}`,
    );
  }
}
