// Runs the compiled test files (dist/test/**/*.test.js) with node's test runner.
// Arguments filter the files by substring, e.g. `node test/run.mjs runner cli`.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { run } from "node:test";
import { tap } from "node:test/reporters";

const root = join(import.meta.dirname, "..", "dist", "test");
const walk = (d) =>
  readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)],
  );
const filters = process.argv.slice(2);
const files = walk(root)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
// The real tests are CPU-bound (a 2-core host runs them at 1.9 cores, and at one core takes twice as
// long): one file more than there are cores keeps every core busy while a file waits on a boot or
// a sleep. 3 on a 2-core host.
const concurrency = Number(process.env.APLSPAWN_TEST_CONCURRENCY ?? availableParallelism() + 1);
// Longest files first (longest-processing-time scheduling): with a few files at a time, the run
// ends soonest when no long file starts last. test/timings.json holds each file's wall time (ms)
// from a whole run; a file it does not know (a new one) counts as long. Refresh it with
// `APLSPAWN_TEST_TIMINGS=test/timings.json node test/run.mjs`.
const TIMINGS = join(import.meta.dirname, "timings.json");
const known = existsSync(TIMINGS) ? JSON.parse(readFileSync(TIMINGS, "utf8")) : {};
const cost = (f) => known[relative(root, f)] ?? Number.POSITIVE_INFINITY;
files.sort((a, b) => cost(b) - cost(a) || a.localeCompare(b));
// fs.inotify.max_user_instances is host-wide: labs of test files running side by side would raise
// and restore it under each other's booting containers. Raise it once for the whole run instead,
// shared with other runs and benches (test/support/inotify.ts).
const { holdInotify, LIMIT, RAISE } = await import(join(root, "support", "inotify.js"));
// The limit must be as the raise set it when the tests end (each lab fixture checks its own lab's
// hold; this catches anything else of the run), and, when no other run shared the raise, as the run
// found it once let go (the raise's bookkeeping once put back its own 8192).
const limitNow = () => (existsSync(LIMIT) ? readFileSync(LIMIT, "utf8").trim() : undefined);
const limitBefore = limitNow();
const raiseShared = existsSync(RAISE);
const lowerInotify = holdInotify();
const limitRaised = limitNow();
// aplspawn's names in /run, the host-wide lock directory among them (it goes with the last lock
// released in it), and the files in that directory.
const LOCKS = "/run/aplspawn";
// The registry of user id ranges (src/lab/id-ranges.ts): a claim lives as long as its upper layer,
// so a test that leaves one behind (a plain down, then its directory removed) is counted too.
const RANGES = "/var/lib/aplspawn/userns";
// Another user (the suite as a non-root user, where the real tests skip) cannot list root's 0700
// directories: there is nothing of its own to count there.
const filesOf = (dir, shown) => {
  try {
    return readdirSync(dir).map((n) => `${shown}/${n}`);
  } catch (e) {
    if (e.code === "ENOENT" || e.code === "EACCES") return [];
    throw e;
  }
};
const inRun = () => [
  ...(existsSync("/run") ? readdirSync("/run") : []).filter(
    (n) => /aplspawn/.test(n) && `/run/${n}` !== RAISE,
  ),
  ...filesOf(LOCKS, "aplspawn"),
  ...filesOf(RANGES, RANGES),
];
const runBefore = inRun();
// APLSPAWN_TEST_CPU=1: each file's CPU, with everything it starts (test/cpu-account.mjs), from a
// cpuacct cgroup per file (root, a cgroup v1 cpuacct hierarchy).
const CPU_ROOT = "/sys/fs/cgroup/cpuacct";
const cpuDir =
  process.env.APLSPAWN_TEST_CPU === "1" && existsSync(CPU_ROOT)
    ? `${CPU_ROOT}/aplspawn-test-${process.pid}`
    : undefined;
// The CLI runs' own log (cpu-account.mjs), in a directory of the run's, only root's.
const cliLogDir = cpuDir && mkdtempSync(join(tmpdir(), "aplspawn-test-cpu-"));
if (cpuDir) {
  mkdirSync(cpuDir);
  process.env.APLSPAWN_TEST_CPU_DIR = cpuDir;
  process.env.APLSPAWN_TEST_CPU_LOG = join(cliLogDir, "cli.jsonl");
  // As a data: URL: node processes the tests start as other users cannot always read the checkout.
  const preload = readFileSync(join(import.meta.dirname, "cpu-account.mjs"), "utf8");
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import=data:text/javascript,${encodeURIComponent(preload)}`;
}
/** The CLI runs the preload logged, summed by test file and by command (its words, not its options). */
function cliCosts(log) {
  const sums = { runs: 0, own: 0, children: 0, spawns: 0, byFile: new Map(), byCommand: new Map() };
  const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : [];
  for (const r of lines.map((l) => JSON.parse(l))) {
    const words = r.args.filter((a, i) => !a.startsWith("-") && !["-c", "--config"].includes(r.args[i - 1]));
    const f = sums.byFile.get(r.file) ?? { runs: 0, cpu: 0 };
    sums.byFile.set(r.file, { runs: f.runs + 1, cpu: f.cpu + r.own + r.children });
    const key = words.slice(0, ["run", "image", "snapshot"].includes(words[0]) ? 2 : 1).join(" ");
    const c = sums.byCommand.get(key) ?? { runs: 0, own: 0, children: 0, spawns: 0 };
    sums.byCommand.set(key, {
      runs: c.runs + 1,
      own: c.own + r.own,
      children: c.children + r.children,
      spawns: c.spawns + r.spawns,
    });
    sums.runs++;
    sums.own += r.own;
    sums.children += r.children;
    sums.spawns += r.spawns;
  }
  return sums;
}
// node --test would sort the files by name: run() keeps the order above.
const took = {};
let failed = false;
async function* timed(events) {
  for await (const e of events) {
    if (e.type === "test:fail" && !e.data.todo) failed = true;
    // A file is the test at nesting 0 named by its path.
    if (e.type === "test:complete" && e.data.nesting === 0 && e.data.name === e.data.file)
      took[relative(root, e.data.file)] = Math.round(e.data.details.duration_ms);
    yield e;
  }
}
// TAP to the terminal, and kept: what was skipped is counted from it.
const tapText = [];
for await (const chunk of tap(timed(run({ files, concurrency })))) {
  process.stdout.write(chunk);
  tapText.push(chunk);
}
const slowest = Object.entries(took).sort(([, a], [, b]) => b - a);
console.log(
  `# slowest files: ${slowest
    .slice(0, 10)
    .map(([f, ms]) => `${f} ${(ms / 1000).toFixed(1)} s`)
    .join(", ")}`,
);
if (cpuDir) {
  const used = readdirSync(cpuDir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => [e.name, Number(readFileSync(join(cpuDir, e.name, "cpuacct.usage"), "utf8")) / 1e9]);
  const sum = used.reduce((a, [, s]) => a + s, 0);
  const cli = cliCosts(process.env.APLSPAWN_TEST_CPU_LOG);
  rmSync(cliLogDir, { recursive: true, force: true });
  console.log(
    `# CPU of the files, with what they started: ${sum.toFixed(0)} s (in brackets: their CLI runs, with what those waited for)`,
  );
  for (const [f, s] of used.sort(([, a], [, b]) => b - a)) {
    const c = cli.byFile.get(f);
    console.log(
      `#   ${s.toFixed(1).padStart(7)} s  ${f}${c ? ` (CLI ${c.cpu.toFixed(1)} s, ${c.runs} runs)` : ""}`,
    );
  }
  console.log(
    `# CLI runs: ${cli.runs}, own CPU ${cli.own.toFixed(0)} s, what they waited for ${cli.children.toFixed(0)} s, ${cli.spawns} processes spawned; by command:`,
  );
  for (const [k, c] of [...cli.byCommand]
    .sort(([, a], [, b]) => b.own + b.children - a.own - a.children)
    .slice(0, 12))
    console.log(
      `#   ${k.padEnd(22)} ${String(c.runs).padStart(4)} runs, each: own ${(c.own / c.runs).toFixed(2)} s, waited for ${(c.children / c.runs).toFixed(2)} s, ${Math.round(c.spawns / c.runs)} spawns`,
    );
  // What still runs there (an ssh master's ControlPersist, say) goes back to the root group first.
  const groups = [
    ...readdirSync(cpuDir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(cpuDir, e.name)),
    cpuDir,
  ];
  for (const g of groups)
    for (let tries = 1; ; tries++) {
      for (const pid of readFileSync(join(g, "cgroup.procs"), "utf8").split("\n").filter(Boolean))
        try {
          writeFileSync(join(CPU_ROOT, "cgroup.procs"), pid);
        } catch {} // gone meanwhile
      try {
        rmdirSync(g);
        break;
      } catch (e) {
        if (e.code !== "EBUSY" || tries === 5) throw e; // a process forked meanwhile: move it too
      }
    }
}
if (process.env.APLSPAWN_TEST_TIMINGS)
  writeFileSync(
    process.env.APLSPAWN_TEST_TIMINGS,
    `${JSON.stringify(Object.fromEntries(Object.entries({ ...known, ...took }).sort()), null, 2)}\n`,
  );
const limitLeft = (now, was, when) => {
  console.error(
    `left by the tests: fs.inotify.max_user_instances is ${now}, it was ${was} ${when} (or another run on the host changed it meanwhile)`,
  );
  process.exitCode = 1;
};
if (limitNow() !== limitRaised) limitLeft(limitNow(), limitRaised, "once the run raised it");
lowerInotify();
if (!raiseShared && !existsSync(RAISE) && limitNow() !== limitBefore)
  limitLeft(limitNow(), limitBefore, "before the run");
// Nothing of aplspawn's may stay in /run once every lab of the run is down (holds, claims, locks and
// their directory, ssh master directories), nor a user id range claim. What was there before the
// run (a lab of the user's) is not counted.
const left = inRun().filter((n) => !runBefore.includes(n));
if (left.length > 0) {
  console.error(`left by the tests (in /run, or a user id range claim): ${left.join(", ")}`);
  process.exitCode = 1;
}
// Skipped tests, as node's TAP names them ("ok 3 - title # SKIP reason"), at any depth.
const lines = tapText.join("").split("\n");
const skipped = lines.filter((l) => /^\s*ok \d+ - .* # SKIP\b/.test(l)).map((l) => l.trim());
const total = lines.filter((l) => /^\s*(not )?ok \d+ - /.test(l)).length;
console.log(`# ${total - skipped.length} of ${total} tests ran; ${skipped.length} skipped`);
// Under CI the real tests must run: one that skips (no root, a missing tool) fails the run.
if (process.env.CI === "true" && skipped.length > 0) {
  console.error(`CI: ${skipped.length} tests skipped; in CI every test must run:\n  ${skipped.join("\n  ")}`);
  process.exit(1);
}
process.exit(process.exitCode || (failed ? 1 : 0));
