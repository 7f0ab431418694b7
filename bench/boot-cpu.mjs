// What one container's boot costs in CPU, counted rather than timed (a busy machine does not blur
// it): a fresh lab of one container on the cached test image, in a private namespace; right after
// `run up` (boot, then the readiness check's ssh login and sudo), the CPU time of every process in
// the container's cgroup (its nspawn, its init and everything that init reaped). On two cores, N
// containers booting at once cost about N times this. Run as root.
//
//   node bench/boot-cpu.mjs --runs 3 --boot lab [--by-process]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureTestImage } from "../dist/test/support/image.js";
import { median, withBenchLab } from "./lab-config.mjs";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    boot: { type: "string", default: "lab" },
    "by-process": { type: "boolean", default: false },
  },
});
const TICK_MS = 1000 / 100; // USER_HZ

// The PIDs in a cgroup and its subgroups.
const procs = (d) => [
  ...readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean),
  ...readdirSync(d, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => procs(join(d, e.name))),
];

// A process's CPU in ms: its own, and that of the children it reaped.
function cpuOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const own = (Number(f[11]) + Number(f[12])) * TICK_MS;
  const reaped = (Number(f[13]) + Number(f[14])) * TICK_MS;
  return { own, reaped, comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim() };
}

// The container's cgroup: that of its init (the systemd among the PIDs `aplspawn pids` printed), in
// the named systemd hierarchy (or cgroup2), above nspawn's "payload": nspawn and the container.
function containerCgroup(pidsText) {
  const pids = pidsText.match(/\b\d+\b/g) ?? [];
  const init = pids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "systemd";
    } catch {
      return false;
    }
  });
  if (!init) throw new Error(`no init among the PIDs of the lab: ${pids.join(" ")}`);
  const line = readFileSync(`/proc/${init}/cgroup`, "utf8")
    .split("\n")
    .find((l) => l.includes(":name=systemd:") || l.startsWith("0::"));
  const hierarchy = line.includes("name=systemd") ? "/sys/fs/cgroup/systemd" : "/sys/fs/cgroup";
  return join(hierarchy, line.split(":")[2].replace(/\/payload(\/.*)?$/, ""));
}

const image = await ensureTestImage();
const store = mkdtempSync(join(tmpdir(), "aplspawn-bootcpu-store-"));
const totals = [];
try {
  for (let i = 0; i < Number(values.runs); i++) {
    const o = { lab: `bootcpu${i}`, store, image, n: 1, bridge: "bcbr0", chain: "BOOTCPU" };
    await withBenchLab({ ...o, containers: { boot: values.boot } }, async ({ ns, cfg }) => {
      const up = await ns.cli(["-c", cfg, "run", "up"]);
      if (up.exitCode !== 0) throw new Error(`run up failed:\n${up.stdout}\n${up.stderr}`);
      const cgroup = containerCgroup((await ns.cli(["-c", cfg, "pids"])).stdout);
      let total = 0;
      for (const pid of procs(cgroup)) {
        try {
          const c = cpuOf(pid);
          total += c.own + c.reaped;
          if (values["by-process"] && c.own + c.reaped > 0)
            console.log(`  ${c.comm} (${pid}): ${c.own} ms, and ${c.reaped} ms in the children it reaped`);
        } catch {
          // gone meanwhile
        }
      }
      totals.push(total);
      console.log(`run ${i + 1}: ${total} ms of CPU in ${cgroup}`);
      await ns.cli(["-c", cfg, "run", "down"]);
    });
  }
} finally {
  rmSync(store, { recursive: true, force: true });
}
console.log(`boot ${values.boot}: median ${median(totals)} ms of CPU per container, boot to ready`);
