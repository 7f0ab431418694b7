// A lab across hosts, measured: `run up` and `run down` on the control node of a lab of 6
// containers over 3 hosts (Ansible carrying aplspawn to each host, the VXLAN joining them) against
// `run up` and `run down` of one host's share alone (its 2 containers, aplspawn run on that host
// directly): the overhead of going through Ansible. The hosts are simulated as the real cluster
// test does (booted systemd hosts with sshd on a datacenter bridge of a private namespace that
// drops foreign sources). Alternating, medians of --runs each. Run as root.
//
//   node bench/cluster.mjs --runs 3
//   APLSPAWN_BENCH_DUMP=/tmp/up.jsonl node bench/cluster.mjs --runs 1   # also keep the last up's --json events
import { writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ok, withDatacenter } from "../dist/test/support/cluster.js";
import { median } from "./lab-config.mjs";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const HOSTS = [
  { name: "b32h1", address: "198.18.33.11" },
  { name: "b32h2", address: "198.18.33.12" },
  { name: "b32h3", address: "198.18.33.13" },
];
const WORKDIR = "/var/lib/aplspawn/b32-cluster-bench";

/** Seconds a command took; fails the bench when it failed. */
async function timed(what, run) {
  const t0 = performance.now();
  ok(await run(), what);
  return (performance.now() - t0) / 1000;
}

const times = { across: { up: [], down: [] }, share: { up: [], down: [] } };
/** Each task of the control node's up across hosts: its durations (s). */
const tasks = new Map();
await withDatacenter(
  { bridge: "dc-b32", gateway: "198.18.33.1/24", hosts: HOSTS, workdir: WORKDIR, prefix: "aplspawn-b32-" },
  async ({ hosts, writeLab, cli: across }) => {
    const [h1] = hosts;
    const image = `{url: "file://${h1.image.path}", sha256: "${h1.image.sha256}"}`;
    await writeLab(
      `lab: b32\nworkdir: ${WORKDIR}\ncluster: {inventory: hosts.ini}\nnetwork: {bridge: br-b32, address: 10.10.48.1/26}\ncontainers: {count: 6, prefix: b32-, machinesDir: /var/lib/machines/b32, readyTimeout: 120}\ninventory: {file: inventory.ini}\n`,
    );
    // The share alone: the same two containers' worth on the first host, its own lab.
    await writeFile(
      join(h1.dir, "share.yaml"),
      `lab: b32s\nworkdir: /var/lib/aplspawn/b32s\nnetwork: {bridge: br-b32s, address: 10.10.49.1/26}\nimage: ${image}\ncontainers: {count: 2, prefix: b32s-, machinesDir: /var/lib/machines/b32s, readyTimeout: 120}\ninventory: {file: /lab/share-inventory.ini, ping: false}\n`,
    );
    const share = (args) => h1.run(["aplspawn", "-c", "/lab/share.yaml", ...args]);
    // One untimed round of each first (caches warm on every host), then alternating.
    for (let i = 0; i <= runs; i++) {
      let out = "";
      let began = 0;
      let ended = 0;
      const a = {
        up: await timed("up across hosts", async () => {
          began = Date.now();
          const r = await across(["--json", "run", "up"]);
          ended = Date.now();
          out = r.stdout;
          if (process.env.APLSPAWN_BENCH_DUMP) writeFileSync(process.env.APLSPAWN_BENCH_DUMP, out);
          return r;
        }),
      };
      a.down = await timed("down across hosts", () => across(["run", "down", "--purge"]));
      const s = { up: await timed("up of one share", () => share(["run", "up"])) };
      s.down = await timed("down of one share", () => share(["run", "down", "--purge"]));
      const line = (x) => `up ${x.up.toFixed(2)} s, down ${x.down.toFixed(2)} s`;
      console.log(
        `round ${i}${i === 0 ? " (warm-up, not counted)" : ""}: 3 hosts ${line(a)}; one share ${line(s)}`,
      );
      if (i === 0) continue;
      // Before the first task's event and after the last one: what the runner's tasks leave out.
      const stamps = out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .filter((e) => e.event === "task")
        .map((e) => Date.parse(e.ts));
      if (stamps.length) {
        tasks.set("(before the first task)", [
          ...(tasks.get("(before the first task)") ?? []),
          (Math.min(...stamps) - began) / 1000,
        ]);
        tasks.set("(after the last task)", [
          ...(tasks.get("(after the last task)") ?? []),
          (ended - Math.max(...stamps)) / 1000,
        ]);
      }
      for (const e of out.split("\n").filter((l) => l.startsWith("{"))) {
        const ev = JSON.parse(e);
        if (ev.event === "task" && ev.state !== "running" && ev.durationMs !== undefined)
          tasks.set(ev.id, [...(tasks.get(ev.id) ?? []), ev.durationMs / 1000]);
      }
      for (const k of ["up", "down"]) {
        times.across[k].push(a[k]);
        times.share[k].push(s[k]);
      }
    }
  },
);
console.log(`\nmedians of ${runs} (load ${(await readFile("/proc/loadavg", "utf8")).split(" ")[0]}):`);
for (const k of ["up", "down"]) {
  const a = median(times.across[k]);
  const s = median(times.share[k]);
  console.log(
    `${k.padEnd(4)} 6 containers over 3 hosts ${a.toFixed(2)} s; one host's share (2) alone ${s.toFixed(2)} s; ratio ${(a / s).toFixed(2)}x`,
  );
}
console.log("\nthe control node's up across hosts, its slowest tasks (medians):");
for (const [id, xs] of [...tasks]
  .map(([id, xs]) => [id, median(xs)])
  .sort((x, y) => y[1] - x[1])
  .slice(0, 6))
  console.log(`${xs.toFixed(2).padStart(7)} s  ${id}`);
