// A lab across hosts, used from the control node: two hosts simulated as booted systemd hosts on a
// datacenter bridge of the test's own namespace (test/support/cluster.ts), the lab up across them.
// `run up`'s table, `status` and `labs` name which host holds which container and its state there
// as that host's aplspawn reports it; `ssh NAME` reaches a container through its host with its
// host key pinned; `exec NAME` runs in a container by its host's aplspawn. With one host's sshd
// stopped, status, labs and exec name that host and why, and the other host still answers.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { type Datacenter, hostState, ok, withDatacenter } from "../support/cluster.js";
import { CLI, type NsResult, skip } from "../support/ns.js";
import type { SystemdHost } from "../support/systemd-host.js";

const HOSTS = [
  { name: "o32h1", address: "198.18.32.11" },
  { name: "o32h2", address: "198.18.32.12" },
];
// The hosts see the control node's /var/lib/aplspawn; a run of its own there (two runs of this file
// side by side, from two checkouts, must not take down or delete each other's lab).
const WORKDIR = `/var/lib/aplspawn/o32-cluster-ops-test-${process.pid}`;

/** What a scenario gets: the hosts, the CLI on the lab's config, the datacenter's commands. */
interface Lab {
  h1: SystemdHost;
  h2: SystemdHost;
  cli(args: string[]): Promise<NsResult>;
  dc(argv: readonly string[]): Promise<NsResult>;
  /** Start the CLI on the lab's config in the control node's namespace, without waiting. */
  start(args: string[]): ChildProcess;
  inventory: string;
}

/** The two hosts on the datacenter, booted once for the scenarios of this file. */
interface Cluster extends Datacenter {
  hosts: [SystemdHost, SystemdHost];
  /** Each host as it was before any lab. */
  before: string[];
}

/** Two hosts on the datacenter (booted, sshd up, joined), then `fn`; then everything goes. */
function withCluster(fn: (c: Cluster) => Promise<void>): Promise<void> {
  return withDatacenter(
    { bridge: "dc-o32", gateway: "198.18.32.1/24", hosts: HOSTS, workdir: WORKDIR, prefix: "aplspawn-o32-" },
    async (d) => {
      const before = await Promise.all(d.hosts.map((h) => hostState(h)));
      await fn({ ...d, hosts: d.hosts as [SystemdHost, SystemdHost], before });
    },
  );
}

/**
 * One scenario on the cluster's hosts: the lab's files on the control node, the scenario, then `run
 * down`, and each host as it was before, the one inventory gone, status saying the lab is down; the
 * lab's workdir on the control node goes with it (the next scenario starts from nothing there).
 */
async function onCluster(c: Cluster, scenario: (l: Lab) => Promise<void>): Promise<void> {
  const { hosts, dc, ns, dir, before, cli } = c;
  const [h1, h2] = hosts;
  try {
    await c.writeLab(`lab: o32
workdir: ${WORKDIR}
cluster: {inventory: hosts.ini}
network: {bridge: br-o32, address: 10.10.46.1/26}
containers: {count: 2, prefix: o32-, machinesDir: /var/lib/machines/o32, readyTimeout: 120}
inventory: {file: inventory.ini}
`);
    try {
      const start = (args: string[]) =>
        ns.spawn("sh", [
          "-c",
          'cd "$1" && shift && exec "$@"',
          "sh",
          dir,
          "node",
          CLI,
          "-c",
          join(dir, "lab.yaml"),
          ...args,
        ]);
      await scenario({ h1, h2, cli, dc, start, inventory: join(dir, "inventory.ini") });
    } catch (e) {
      // A failed scenario still takes the lab down: the hosts' loop devices are this machine's.
      await cli(["run", "down"]);
      throw e;
    }
    ok(await cli(["run", "down"]), "run down with cluster");
    for (const [i, h] of hosts.entries())
      assert.equal(await hostState(h), before[i], `host ${HOSTS[i]!.name} differs from before the lab`);
    const after = await cli(["status"]);
    assert.equal(after.exitCode, 1);
    assert.match(after.stderr, /lab o32 is down/);
    assert.equal(existsSync(join(dir, "inventory.ini")), false, "the one inventory was left");
  } finally {
    await rm(WORKDIR, { recursive: true, force: true });
  }
}

// The two scenarios share one boot of the two hosts: each ends with the lab down and both hosts
// as they were before it (and host 2's sshd serving again), so the next starts as on fresh hosts.
test(
  "two hosts booted once, a lab across them used from the control node",
  { skip, timeout: 40 * 60_000 },
  (t) =>
    withCluster(async (c) => {
      await t.test(
        "a lab across two hosts from the control node: up's table, status and labs show each host's containers and states, ssh and exec reach a container through its host, an unreachable host is named with why",
        () => onCluster(c, acrossTwoHosts),
      );
      await t.test(
        "run up --keep-going across two hosts: the host that fails is named with why and taken down alone, the other's share stays up in the one inventory and the overlay, run down takes down both",
        () => onCluster(c, keepGoing),
      );
      await t.test(
        "the control node killed mid-up (it and its ansible-playbook, at once) while a host's share comes up: run down --purge takes down both hosts from its journal, purging their shares",
        () => onCluster(c, controlNodeKilled),
      );
    }),
);

/** up's table, status, labs, ssh and exec across the hosts; then host 2 unreachable. */
async function acrossTwoHosts({ h2, cli, dc }: Lab): Promise<void> {
  // Up: its table names each container's host and its state as that host reports it.
  const up = ok(await cli(["run", "up"]), "run up with cluster");
  assert.match(up.stdout, /NAME\s+ADDRESS\s+HOST\s+GROUPS\s+STATE/);
  assert.match(up.stdout, /o32-10\s+10\.10\.46\.10\s+o32h1\s+\S+\s+running/);
  assert.match(up.stdout, /o32-11\s+10\.10\.46\.11\s+o32h2\s+\S+\s+running/);

  // status: each host's own checks of its share.
  const st = ok(await cli(["status"]), "status across hosts");
  assert.match(st.stdout, /host o32h1 \(198\.18\.32\.11\): o32-10/);
  assert.match(st.stdout, /host o32h2 \(198\.18\.32\.12\): o32-11/);
  assert.match(st.stdout, /Checking container o32-11 on o32h2, ip 10\.10\.46\.11\/26/);
  assert.match(st.stdout, /\[ DONE \] all \d+ checks passed on 2 hosts/);
  const stj = JSON.parse(ok(await cli(["status", "--json"]), "status --json").stdout) as {
    ok: boolean;
    hosts: { host: string; ok: boolean; checks: { target: string }[] }[];
  };
  assert.equal(stj.ok, true);
  assert.deepEqual(
    stj.hosts.map((h) => [
      h.host,
      h.ok,
      h.checks.some((k) => k.target === `o32-1${h.host.at(-1) === "1" ? 0 : 1}`),
    ]),
    [
      ["o32h1", true, true],
      ["o32h2", true, true],
    ],
  );

  // labs: the lab up, each host's container running there.
  const labs = JSON.parse(ok(await dc(["node", CLI, "labs", "--json"]), "labs").stdout) as {
    lab: string;
    state: string;
    containersUp: number;
    hosts?: { host: string; containers: { name: string; state: string }[] }[];
  }[];
  const row = labs.find((r) => r.lab === "o32");
  assert.equal(row?.state, "up", JSON.stringify(labs));
  assert.equal(row?.containersUp, 2);
  assert.deepEqual(
    row?.hosts?.map((h) => [h.host, h.containers]),
    [
      ["o32h1", [{ name: "o32-10", state: "running" }]],
      ["o32h2", [{ name: "o32-11", state: "running" }]],
    ],
  );
  assert.match(
    ok(await dc(["node", CLI, "labs"]), "labs").stdout,
    /^ {2}o32h2 \(198\.18\.32\.12\): o32-11 running$/m,
  );

  // ssh through the host (the merged known_hosts pins the container's key), exec by its host.
  const ssh = ok(await cli(["ssh", "o32-11", "--", "cat", "/etc/hostname"]), "ssh across hosts");
  assert.equal(ssh.stdout.trim(), "o32-11");
  const ex = ok(await cli(["exec", "o32-10", "--", "cat", "/etc/hostname"]), "exec across hosts");
  assert.equal(ex.stdout.trim(), "o32-10");
  // Its exit code comes back.
  assert.equal((await cli(["exec", "o32-11", "--", "sh", "-c", "exit 7"])).exitCode, 7);

  // One host unreachable: named, with why; the other still reports.
  ok(await h2.run(["systemctl", "stop", "sshd-test"]), "stop host 2's sshd");
  const down2 = await cli(["status"]);
  assert.equal(down2.exitCode, 1, down2.stdout);
  assert.match(
    down2.stdout,
    // Ansible says "port 22: Connection refused", or "Data could not be sent … Broken pipe" when its
    // ControlPersist connection had not yet seen sshd go: either way the host is named unreachable.
    /\[ FAIL \] host o32h2 \(198\.18\.32\.12\): o32-11: unreachable: .*198\.18\.32\.12\b/,
  );
  assert.match(down2.stdout, /\[ OK \] o32h1: /);
  assert.match(down2.stderr, /status failed on o32h2; no answer from o32h2: unreachable/);
  const labs2 = ok(await dc(["node", CLI, "labs"]), "labs with a host unreachable").stdout;
  assert.match(labs2, /^o32\s+partial\s+1\/2/m);
  assert.match(labs2, /^ {2}o32h2 \(198\.18\.32\.12\): no answer: unreachable: /m);
  const ex2 = await cli(["exec", "o32-11", "--", "true"]);
  assert.equal(ex2.exitCode, 255);
  assert.match(ex2.stderr, /ssh to its host o32h2 \(198\.18\.32\.12\) failed/);
  ok(await h2.run(["systemd-run", "--unit=sshd-test2", "/usr/sbin/sshd", "-D", "-e"]), "host 2's sshd again");
  ok(
    await h2.run([
      "sh",
      "-c",
      "i=0; until ss -ltn | grep -q ':22 '; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done",
    ]),
    "host 2's sshd listening again",
  );
}

/** Host 2 cannot make its machines directory: up --keep-going goes on with host 1's share alone. */
async function keepGoing({ h1, h2, cli, dc, inventory }: Lab): Promise<void> {
  const before2 = await hostState(h2);
  // Host 2 cannot make its lab's machines directory (a file stands there; the scenario before on
  // these hosts left the directory, empty, as run down does): its aplspawn run up fails (and rolls
  // back its own part).
  ok(
    await h2.run([
      "sh",
      "-c",
      "rmdir /var/lib/machines/o32 2>/dev/null; mkdir -p /var/lib/machines && : > /var/lib/machines/o32",
    ]),
    "host 2's machines dir blocked",
  );
  const up = await cli(["run", "up", "--keep-going"]);
  assert.equal(up.exitCode, 1, `${up.stdout}\n${up.stderr}`);
  assert.match(
    up.stdout,
    /warning: host o32h2 failed: .+; its share is taken down, the lab goes on without it/,
  );
  assert.match(up.stderr, /the lab is up without o32h2 \(--keep-going\): o32h2: /);
  // The table and the one inventory: host 1's container alone, running.
  assert.match(up.stdout, /o32-10\s+10\.10\.46\.10\s+o32h1\s+\S+\s+running/);
  assert.doesNotMatch(up.stdout, /o32-11\s+10\.10\.46\.11/);
  const inv = await readFile(inventory, "utf8");
  assert.match(inv, /^o32-10 /m);
  assert.doesNotMatch(inv, /o32-11/);
  const ping = ok(await dc(["ansible", "-i", inventory, "all", "-m", "ping", "-o"]), "ansible ping");
  assert.equal(ping.stdout.match(/SUCCESS/g)?.length, 1, ping.stdout);
  // Host 2 holds nothing of the lab; host 1's overlay no longer sends to it.
  assert.equal(await hostState(h2), before2, "host 2 keeps something of the failed share");
  const fdb = ok(await h1.run(["bridge", "fdb", "show"]), "fdb").stdout;
  assert.doesNotMatch(fdb, /dst 198\.18\.32\.12\b/);
  assert.match(ok(await h1.run(["ip", "-o", "link", "show", "type", "vxlan"]), "vxlan").stdout, /aplvx/);
  // status asks the host that holds the lab.
  const st = ok(await cli(["status"]), "status after keep-going");
  assert.match(st.stdout, /host o32h1 \(198\.18\.32\.11\): o32-10/);
  assert.doesNotMatch(st.stdout, /host o32h2/);
  ok(
    await h2.run(["sh", "-c", "rm /var/lib/machines/o32 && mkdir /var/lib/machines/o32"]),
    "host 2's machines dir unblocked",
  );
}

/** Every process below pid (its children, theirs, …), leaves first. */
function descendants(pid: number): number[] {
  const rows = execFileSync("ps", ["-e", "-o", "pid=,ppid="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const below = (p: number): number[] => rows.filter(([, pp]) => pp === p).flatMap(([c]) => [...below(c), c]);
  return below(pid);
}

/**
 * The control node dies mid-up: `run up` and everything it started (ansible-playbook, its ssh
 * connections) killed at once while host 1's share is coming up. The hosts' own runs go on without
 * it; `run down --purge` then takes down both hosts from the control node's journal, with --purge
 * on the hosts too.
 */
async function controlNodeKilled({ h1, h2, cli, start }: Lab): Promise<void> {
  const up = start(["run", "up"]);
  let upOut = "";
  up.stdout?.on("data", (d: Buffer) => (upOut += d));
  up.stderr?.on("data", (d: Buffer) => (upOut += d));
  const exited = new Promise<"exited">((res) => up.once("exit", () => res("exited")));
  try {
    // Host 1's share is coming up: its lab bridge is there (watched on the host itself: one
    // process there, not one entered every 200 ms). If up ends first, the watch would wait forever.
    const watch = h1.run(["sh", "-c", "until ip link show br-o32 >/dev/null 2>&1; do sleep 0.2; done"], {
      timeoutMs: 300_000,
    });
    const first = await Promise.race([watch, exited]);
    if (first === "exited") {
      await h1.run(["pkill", "-f", "until ip link show br-o32"]);
      await watch;
      assert.fail(`run up ended before host 1's lab bridge came up:\n${upOut}`);
    }
    ok(first, "host 1's lab bridge");
  } finally {
    for (const p of [...descendants(up.pid!), up.pid!])
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone already
      }
    await exited;
  }
  // `run down --purge` from there: the hosts' down runs with --purge too, so each host's share
  // leaves nothing of its lasting state (lab key, host keys, upper layers) in its lab directory.
  ok(await cli(["run", "down", "--purge"]), "run down --purge after the control node was killed");
  // (Its journal file stays, its entries all undone, as on one host.)
  for (const h of [h1, h2]) {
    const left = await h.run(["sh", "-c", `ls -A ${WORKDIR}/o32 2>/dev/null || true`]);
    const kept = left.stdout.split("\n").filter((f) => f && f !== "journal.jsonl");
    assert.deepEqual(kept, [], `a host kept its share's lasting state: ${kept.join(", ")}`);
  }
}
