// Runs the compiled test files (dist/test/**/*.test.js) with node's test runner.
// Arguments filter the files by substring, e.g. `node test/run.mjs runner cli`.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

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
const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, ...files], {
  stdio: "inherit",
});
if (inotifyBefore !== undefined) writeFileSync(inotify, inotifyBefore);
process.exit(r.status ?? 1);
