// With APLSPAWN_TEST_CPU=1, test/run.mjs preloads this (as a data: URL) into every node process of the run
// (NODE_OPTIONS): a test file's process moves itself into a cpuacct cgroup of its own, so that the
// CPU of everything it starts is counted there (the CLI runs, their containers, Ansible, sshd of
// test hosts): aplspawn moves containers in the cgroup2 and named systemd hierarchies only, so
// they stay in the file's cpuacct cgroup. Other node processes (the CLI) do nothing here.
import { appendFileSync, existsSync, mkdirSync } from "node:fs";
import { basename, dirname } from "node:path";

const base = process.env.APLSPAWN_TEST_CPU_DIR;
const file = process.argv[1] ?? "";
if (base && file.endsWith(".test.js") && existsSync(base)) {
  const dir = `${base}/${basename(dirname(file))}-${basename(file, ".test.js")}`;
  mkdirSync(dir, { recursive: true });
  appendFileSync(`${dir}/cgroup.procs`, "0\n");
}
