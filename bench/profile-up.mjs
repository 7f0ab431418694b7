// Where the time of a small `run up` goes: runs `run up --json` of N containers (fresh lab each
// time, on the cached test image, in a private namespace), then prints each task's median duration
// and the wall time not spent in any task (the runner, start-up, journal). Run as root.
//
//   node bench/profile-up.mjs --n 1 --runs 5 [--init script]
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
    runs: { type: "string", default: "5" },
    init: { type: "string", default: "boot" },
    // Also time `run up` on a terminal (a pty, the default renderer) in place of --json.
    tty: { type: "boolean", default: false },
    // Also print the last run's timeline: when each task started and ended, from the CLI's start.
    timeline: { type: "boolean", default: false },
    // With --timeline: also each process the CLI spawned (bench/exec-log.mjs), on the same clock.
    execs: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const runs = Number(values.runs);
const image = await ensureTestImage();
const store = mkdtempSync(join(tmpdir(), "aplspawn-profile-store-"));
const byKind = new Map();
const walls = [];
let timeline = [];
let execs = [];
const EXEC_LOG = join(tmpdir(), `aplspawn-profile-execs-${process.pid}.jsonl`);

/** `run up --json` inside the namespace, each output line stamped with its arrival (ms from start). */
function stamped(ns, args) {
  rmSync(EXEC_LOG, { force: true });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // The exec log's clock is the CLI's performance.now(), which starts near our t0 (its start-up).
    const env = values.execs
      ? [
          `NODE_OPTIONS=--import=${join(import.meta.dirname, "exec-log.mjs")}`,
          `APLSPAWN_EXEC_LOG=${EXEC_LOG}`,
        ]
      : [];
    const child = ns.spawn("env", [...env, process.execPath, CLI, ...args]);
    const lines = [];
    let rest = "";
    let stderr = "";
    child.stdout.on("data", (b) => {
      const parts = (rest + b).split("\n");
      rest = parts.pop();
      for (const l of parts) lines.push([performance.now() - t0, l]);
    });
    child.stderr.on("data", (b) => {
      stderr += b;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({ exitCode: code, stdout: lines.map(([, l]) => l).join("\n"), stderr, lines }),
    );
  });
}
try {
  for (let i = 0; i <= runs; i++) {
    const lab = { lab: `prof${i}`, store, image, n, bridge: "pfbr0", chain: "PROF" };
    await withBenchLab({ ...lab, containers: { init: values.init } }, async ({ ns, cfg }) => {
      const t0 = performance.now();
      const r = values.tty
        ? await ns.run("script", ["-qec", `${process.execPath} ${CLI} -c ${cfg} run up`, "/dev/null"], {
            env: { TERM: "xterm-256color", CI: "" },
          })
        : values.timeline
          ? await stamped(ns, ["-c", cfg, "--json", "run", "up"])
          : await ns.cli(["-c", cfg, "--json", "run", "up"]);
      const wall = performance.now() - t0;
      if (r.exitCode !== 0) throw new Error(`run up failed:\n${r.stdout}\n${r.stderr}`);
      await ns.cli(["-c", cfg, "run", "down"]);
      // The first run is a warm-up (it verifies the image once).
      if (i === 0) return;
      walls.push(wall);
      if (r.lines) timeline = r.lines;
      if (values.execs) {
        execs = readFileSync(EXEC_LOG, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l));
      }
      rmSync(EXEC_LOG, { force: true });
      const events = r.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .filter((e) => e.event === "task" && e.durationMs !== undefined);
      const seen = new Map();
      for (const e of events) {
        const kind = e.id.replace(/\[.*$/, "");
        seen.set(kind, (seen.get(kind) ?? 0) + e.durationMs);
      }
      for (const [k, ms] of seen) byKind.set(k, [...(byKind.get(k) ?? []), ms]);
    });
  }
} finally {
  rmSync(store, { recursive: true, force: true });
}
const rows = [...byKind].map(([k, xs]) => [k, median(xs)]).sort((a, b) => b[1] - a[1]);
const wall = median(walls);
console.log(`run up of ${n}: median wall ${wall.toFixed(0)} ms over ${walls.length} runs`);
for (const [k, ms] of rows)
  console.log(`${ms.toFixed(0).padStart(7)} ms  ${((100 * ms) / wall).toFixed(1).padStart(5)}%  ${k}`);
const sum = rows.reduce((a, [, ms]) => a + ms, 0);
console.log(`${sum.toFixed(0).padStart(7)} ms  sum of tasks (concurrent tasks overlap)`);
if (values.timeline) {
  // Each task's line: when it ended (its event's arrival) and, from its duration, when it started.
  console.log("\nlast run's timeline (ms from the CLI's start): start → end  task (or $ process)");
  const rows = [];
  for (const [at, l] of timeline) {
    if (!l.startsWith("{")) continue;
    const e = JSON.parse(l);
    if (e.event === "task" && e.durationMs !== undefined && e.state !== "running")
      rows.push([at - e.durationMs, at, `${e.id} (${e.state})`]);
    else if (e.event === "summary") rows.push([at, at, "summary"]);
  }
  for (const x of execs) rows.push([x.t0, x.t0 + x.ms, `  $ ${x.argv.join(" ").slice(0, 110)}`]);
  rows.sort((a, b) => a[0] - b[0]);
  for (const [a, b, what] of rows)
    console.log(
      `${a.toFixed(0).padStart(6)} → ${b.toFixed(0).padStart(6)} ${(b - a).toFixed(0).padStart(5)}  ${what}`,
    );
}
