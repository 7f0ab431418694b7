// What one container's boot costs in CPU, counted rather than timed (a busy machine does not blur
// it): a fresh lab of one container on the cached test image, in a private namespace; right after
// `run up` (boot, then the readiness check's ssh login and sudo), the CPU time of every process in
// the container's cgroup (its nspawn, its init and everything that init reaped). On two cores, N
// containers booting at once cost about N times this. Run as root.
//
//   node bench/boot-cpu.mjs --runs 3 --boot lab [--by-process]
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureTestImage } from "../dist/test/support/image.js";
import { TestNamespace } from "../dist/test/support/ns.js";
import { benchLabConfig, endBenchLab, median } from "./lab-config.mjs";

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

const image = await ensureTestImage();
const totals = [];
for (let i = 0; i < Number(values.runs); i++) {
  const store = mkdtempSync(join(tmpdir(), "aplspawn-bootcpu-store-"));
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-bootcpu-"));
  const ns = await TestNamespace.create();
  const lab = `bootcpu${i}`;
  try {
    const cfg = join(dir, "lab.yaml");
    writeFileSync(
      cfg,
      benchLabConfig({
        lab,
        store,
        dir,
        image,
        n: 1,
        bridge: "bcbr0",
        chain: "BOOTCPU",
        containers: { boot: values.boot },
      }),
    );
    const up = await ns.cli(["-c", cfg, "run", "up"]);
    if (up.exitCode !== 0) throw new Error(`run up failed:\n${up.stdout}\n${up.stderr}`);
    // The container's init: the systemd among the PIDs `aplspawn pids` prints.
    const pids = (await ns.cli(["-c", cfg, "pids"])).stdout.match(/\b\d+\b/g) ?? [];
    const init = pids.find((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "systemd";
      } catch {
        return false;
      }
    });
    if (!init) throw new Error(`no init among the PIDs of the lab: ${pids.join(" ")}`);
    // Its cgroup in the named systemd hierarchy, above nspawn's "payload": nspawn and the container.
    const line = readFileSync(`/proc/${init}/cgroup`, "utf8")
      .split("\n")
      .find((l) => l.includes(":name=systemd:") || l.startsWith("0::"));
    const hierarchy = line.includes("name=systemd") ? "/sys/fs/cgroup/systemd" : "/sys/fs/cgroup";
    const cgroup = join(hierarchy, line.split(":")[2].replace(/\/payload(\/.*)?$/, ""));
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
  } finally {
    await endBenchLab(ns, { dir, store, lab });
    rmSync(store, { recursive: true, force: true });
  }
}
console.log(`boot ${values.boot}: median ${median(totals)} ms of CPU per container, boot to ready`);
