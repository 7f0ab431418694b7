// The tests' CPU, this checkout (A) against a baseline (B), in alternating pairs. The same code
// used from 1,609 to 1,735 CPU-s for the whole suite on one machine (issue #34), so a change worth
// a few percent shows only against a baseline measured in the same call, pair by pair.
// Each run is `node test/run.mjs FILE…` with APLSPAWN_TEST_CPU=1 in one checkout, alone: its CPU is
// the sum of its files' cpuacct groups (all they started: CLI runs, containers, Ansible), its wall
// time the run's. The order alternates (A B, B A, …) so a drift of the machine's speed, and
// whatever a run leaves to the next, weigh on both: an even count of pairs balances it (seen: the
// first of a pair took about 10 % more CPU with the cluster files). Prints each pair, the medians
// and the median of the pairs' A/B ratios; a run that fails is printed with its tail and its pair
// left out. Nothing here judges: no threshold.
// The baseline: --base DIR, a built checkout; or --base-commit REV, cloned from this repository
// into a 0700 directory under /var/tmp, `npm ci` and built there, removed at the end.
// Needs root and `npm run build`. Usage:
//   node bench/test-ab.mjs --base-commit HEAD~1 --pairs 4 -- lab/provision lab/test-command
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    base: { type: "string" },
    "base-commit": { type: "string" },
    pairs: { type: "string", default: "4" },
  },
});
const files = positionals;
const pairs = Number(values.pairs);
if (files.length === 0 || !(pairs >= 1) || Boolean(values.base) === Boolean(values["base-commit"])) {
  console.error(
    "usage: node bench/test-ab.mjs (--base DIR | --base-commit REV) [--pairs N] -- FILE…  (as test/run.mjs takes them)",
  );
  process.exit(2);
}
const here = resolve(import.meta.dirname, "..");
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "ignore", "inherit"] });

let made;
let base = values.base ? resolve(values.base) : undefined;
if (!base) {
  made = mkdtempSync("/var/tmp/aplspawn-ab-");
  base = join(made, "base");
  console.log(`baseline: ${values["base-commit"]} in ${base} (clone, npm ci, build)`);
  sh("git", ["clone", "-q", here, base]);
  sh("git", ["checkout", "-q", values["base-commit"]], base);
  sh("npm", ["ci", "--no-audit", "--no-fund"], base);
  sh("npm", ["run", "build"], base);
}

/** One run of the files in `dir`: its CPU (s, the files' sum) and wall time (s), or why it failed. */
function once(dir) {
  const t0 = performance.now();
  const r = spawnSync("node", ["test/run.mjs", ...files], {
    cwd: dir,
    env: { ...process.env, APLSPAWN_TEST_CPU: "1" },
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  const wall = (performance.now() - t0) / 1000;
  const out = `${r.stdout}\n${r.stderr}`;
  const at = out.indexOf("# CPU of the files");
  const cpu = [...out.slice(at).matchAll(/^#\s+([\d.]+) s {2}\S+( \(CLI .*\))?$/gm)].reduce(
    (a, m) => a + Number(m[1]),
    0,
  );
  if (r.status !== 0 || at < 0) return { failed: out.split("\n").slice(-15).join("\n") };
  return { cpu, wall };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f1 = (x) => x.toFixed(1);
const rows = [];
try {
  for (let i = 1; i <= pairs; i++) {
    const order = i % 2 ? ["A", "B"] : ["B", "A"];
    const got = {};
    for (const side of order) got[side] = once(side === "A" ? here : base);
    if (got.A.failed || got.B.failed) {
      for (const side of ["A", "B"])
        if (got[side].failed) console.log(`pair ${i}: ${side} failed:\n${got[side].failed}`);
      continue;
    }
    const row = { a: got.A, b: got.B, cpu: got.A.cpu / got.B.cpu, wall: got.A.wall / got.B.wall };
    rows.push(row);
    console.log(
      `pair ${i} (${order.join(" then ")}): A ${f1(row.a.cpu)} CPU-s ${f1(row.a.wall)} s, B ${f1(row.b.cpu)} CPU-s ${f1(row.b.wall)} s, A/B CPU ${row.cpu.toFixed(3)} wall ${row.wall.toFixed(3)}`,
    );
  }
} finally {
  if (made) rmSync(made, { recursive: true, force: true });
}
if (rows.length === 0) {
  console.log("no pair finished");
  process.exit(1);
}
const m = (f) => median(rows.map(f));
console.log(`\n| ${files.join(" ")} | median | min | max |`);
console.log("|---|---|---|---|");
for (const [name, f] of [
  ["A CPU-s", (r) => r.a.cpu],
  ["B CPU-s", (r) => r.b.cpu],
  ["A wall s", (r) => r.a.wall],
  ["B wall s", (r) => r.b.wall],
]) {
  const xs = rows.map(f);
  console.log(`| ${name} | ${f1(m(f))} | ${f1(Math.min(...xs))} | ${f1(Math.max(...xs))} |`);
}
for (const [name, f] of [
  ["A/B CPU, pair by pair", (r) => r.cpu],
  ["A/B wall, pair by pair", (r) => r.wall],
]) {
  const xs = rows.map(f);
  console.log(
    `| ${name} | ${m(f).toFixed(3)} | ${Math.min(...xs).toFixed(3)} | ${Math.max(...xs).toFixed(3)} |`,
  );
}
