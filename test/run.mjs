// Runs the compiled test files (dist/test/**/*.test.js) with node's test runner.
// Arguments filter the files by substring, e.g. `node test/run.mjs runner cli`.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const root = join(import.meta.dirname, "..", "dist", "test");
const walk = (d) =>
  readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)],
  );
const filters = process.argv.slice(2);
const files = walk(root)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
const concurrency = process.env.APLSPAWN_TEST_CONCURRENCY ?? "3";
// fs.inotify.max_user_instances is host-wide: labs of test files running side by side would raise
// and restore it under each other's booting containers. Raise it once for the whole run instead.
const inotify = "/proc/sys/fs/inotify/max_user_instances";
let inotifyBefore;
if (process.getuid?.() === 0 && existsSync(inotify)) {
  inotifyBefore = readFileSync(inotify, "utf8").trim();
  if (Number(inotifyBefore) < 8192) writeFileSync(inotify, "8192");
}
// aplspawn's names in /run. The host-wide lock directory itself stays (root's, 0700, empty, like
// /run/lock): the files in it are counted.
const LOCKS = "/run/aplspawn";
const inRun = () => [
  ...(existsSync("/run") ? readdirSync("/run") : []).filter((n) => /aplspawn/.test(n) && n !== "aplspawn"),
  ...(existsSync(LOCKS) ? readdirSync(LOCKS).map((n) => `aplspawn/${n}`) : []),
];
const runBefore = inRun();
// TAP to the terminal as before, and a copy to a file: what was skipped is counted from it.
const tap = join(mkdtempSync(join(tmpdir(), "aplspawn-tap-")), "tests.tap");
const r = spawnSync(
  process.execPath,
  [
    "--test",
    `--test-concurrency=${concurrency}`,
    "--test-reporter=tap",
    "--test-reporter-destination=stdout",
    "--test-reporter=tap",
    `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { stdio: "inherit" },
);
if (inotifyBefore !== undefined) writeFileSync(inotify, inotifyBefore);
// Nothing of aplspawn's may stay in /run once every lab of the run is down: holds, claims, locks,
// ssh master directories. What was there before the run (a lab of the user's) is not counted.
const left = inRun().filter((n) => !runBefore.includes(n));
if (left.length > 0) {
  console.error(`left in /run by the tests: ${left.join(", ")}`);
  process.exitCode = 1;
}
// Skipped tests, as node's TAP names them ("ok 3 - title # SKIP reason"), at any depth.
const lines = existsSync(tap) ? readFileSync(tap, "utf8").split("\n") : [];
rmSync(dirname(tap), { recursive: true, force: true });
const skipped = lines.filter((l) => /^\s*ok \d+ - .* # SKIP\b/.test(l)).map((l) => l.trim());
const total = lines.filter((l) => /^\s*(not )?ok \d+ - /.test(l)).length;
console.log(`# ${total - skipped.length} of ${total} tests ran; ${skipped.length} skipped`);
// Under CI the real tests must run: one that skips (no root, a missing tool) fails the run.
if (process.env.CI === "true" && skipped.length > 0) {
  console.error(`CI: ${skipped.length} tests skipped; in CI every test must run:\n  ${skipped.join("\n  ")}`);
  process.exit(1);
}
process.exit(process.exitCode || (r.status ?? 1));
