// A lab across hosts, measured: `run up` and `run down` on the control node of a lab of 6
// containers over 3 hosts (Ansible carrying aplspawn to each host, the VXLAN joining them) against
// `run up` and `run down` of one host's share alone (its 2 containers, aplspawn run on that host
// directly): the overhead of going through Ansible. The hosts are simulated as the real cluster
// test does (booted systemd hosts with sshd on a datacenter bridge of a private namespace that
// drops foreign sources). Alternating, medians of --runs each. Run as root.
//
//   node bench/cluster.mjs --runs 3
//   APLSPAWN_BENCH_DUMP=/tmp/up.jsonl node bench/cluster.mjs --runs 1   # also keep the last up's --json events
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEBS, joinDatacenter, ok, sshDebs } from "../dist/test/support/cluster.js";
import { CLI, TestNamespace, tempDir } from "../dist/test/support/ns.js";
import { withSystemdHosts } from "../dist/test/support/systemd-host.js";
import { median } from "./lab-config.mjs";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const DC = "dc-b32";
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

await sshDebs();
const t = await tempDir("aplspawn-b32-");
const ns = await TestNamespace.create();
const dc = (argv) => ns.run(argv[0], argv.slice(1), { timeoutMs: 900_000, cwd: t.path });
const times = { across: { up: [], down: [] }, share: { up: [], down: [] } };
/** Each task of the control node's up across hosts: its durations (s). */
const tasks = new Map();
try {
  ok(await dc(["ip", "link", "add", DC, "type", "bridge"]), "bridge");
  ok(await dc(["ip", "addr", "add", "198.18.33.1/24", "dev", DC]), "address");
  ok(await dc(["ip", "link", "set", DC, "up"]), "up");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(t.path, "id")]);
  await withSystemdHosts(
    HOSTS.map((h) => h.name),
    ["--network-veth", `--bind-ro=${DEBS}:/debs`],
    async (hosts) => {
      await joinDatacenter(ns, DC, t.path, hosts, HOSTS);
      const [h1] = hosts;
      const image = `{url: "file://${h1.image.path}", sha256: "${h1.image.sha256}"}`;
      await writeFile(
        join(t.path, "lab.yaml"),
        `lab: b32\nworkdir: ${WORKDIR}\ncluster: {inventory: hosts.ini}\nnetwork: {bridge: br-b32, address: 10.10.48.1/26}\nimage: ${image}\ncontainers: {count: 6, prefix: b32-, machinesDir: /var/lib/machines/b32, readyTimeout: 120}\ninventory: {file: inventory.ini}\n`,
      );
      // The share alone: the same two containers' worth on the first host, its own lab.
      await writeFile(
        join(h1.dir, "share.yaml"),
        `lab: b32s\nworkdir: /var/lib/aplspawn/b32s\nnetwork: {bridge: br-b32s, address: 10.10.49.1/26}\nimage: ${image}\ncontainers: {count: 2, prefix: b32s-, machinesDir: /var/lib/machines/b32s, readyTimeout: 120}\ninventory: {file: /lab/share-inventory.ini, ping: false}\n`,
      );
      const across = (args) => dc(["node", CLI, "-c", join(t.path, "lab.yaml"), ...args]);
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
} finally {
  await ns.destroy();
  await rm(WORKDIR, { recursive: true, force: true });
  await t.cleanup();
}
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
