// With APLSPAWN_TEST_CPU=1, test/run.mjs preloads this (as a data: URL) into every node process of the run
// (NODE_OPTIONS): a test file's process moves itself into a cpuacct cgroup of its own, so that the
// CPU of everything it starts is counted there (the CLI runs, their containers, Ansible, sshd of
// test hosts): aplspawn moves containers in the cgroup2 and named systemd hierarchies only, so
// they stay in the file's cpuacct cgroup. It names its file to what it starts
// (APLSPAWN_TEST_CPU_FILE).
// A CLI process (cli/bin.js) counts the processes it spawns, and when it exits writes a line to the
// run's log (APLSPAWN_TEST_CPU_LOG): its file, its arguments, its own CPU, the CPU of the children
// it waited for, and its spawns. A CLI run as another user cannot write there and is not counted.
import { ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname } from "node:path";

const base = process.env.APLSPAWN_TEST_CPU_DIR;
const file = process.argv[1] ?? "";
if (base && file.endsWith(".test.js") && existsSync(base)) {
  const name = `${basename(dirname(file))}-${basename(file, ".test.js")}`;
  const dir = `${base}/${name}`;
  mkdirSync(dir, { recursive: true });
  appendFileSync(`${dir}/cgroup.procs`, "0\n");
  process.env.APLSPAWN_TEST_CPU_FILE = name;
}
const log = process.env.APLSPAWN_TEST_CPU_LOG;
if (log && /[/\\]cli[/\\](bin|main)\.js$/.test(file)) {
  let spawns = 0;
  const spawn = ChildProcess.prototype.spawn;
  ChildProcess.prototype.spawn = function (...args) {
    spawns++;
    return spawn.apply(this, args);
  };
  process.on("exit", () => {
    const own = process.cpuUsage();
    try {
      // cutime and cstime, fields 16 and 17 of /proc/self/stat, in clock ticks (100 a second).
      const stat = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
      appendFileSync(
        log,
        `${JSON.stringify({
          file: process.env.APLSPAWN_TEST_CPU_FILE ?? "?",
          args: process.argv.slice(2),
          own: (own.user + own.system) / 1e6,
          children: (Number(stat[13]) + Number(stat[14])) / 100,
          spawns,
        })}\n`,
      );
    } catch {} // a CLI run as another user (or a run's log gone with it): not counted
  });
}
