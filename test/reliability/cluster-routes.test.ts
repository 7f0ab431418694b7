// A lab across hosts with `cluster.overlay: routes`, for real: two hosts simulated as booted
// systemd hosts on one "datacenter" bridge of the test's own namespace that lets any source pass
// (one plain L2, what routes need). The control node (this test, in the datacenter's namespace)
// runs `aplspawn run up`, a lab of 4 containers (`init: script`), 2 on each host: first with a fault on the control
// node once the hosts are up, which rolls both hosts back to as they were. Ansible reaches all 4 through the
// one inventory; every container reaches every other by its lab address (TCP, and an echo of its
// link's full 1500 bytes with "don't fragment": routes add no header). The attack: the datacenter
// itself (on the hosts' L2, no host of the lab) sends a container a frame with a lab source of the
// other host's; the routes' chain drops it. The control: with that chain replaced by a check of the
// source address alone, the same frame is delivered; a second `run up` puts the chain back and the
// frame is dropped again. `run down` leaves each host (routes, proxy neighbour entries, chains,
// sysctls) and the control node as they were.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { vniOf } from "../../config/cluster.js";
import { labAcross, ok, withDatacenter } from "../support/cluster.js";
import { PROBE_PY, TOOL_PY } from "../support/cluster-probes.js";
import { CLI, skip } from "../support/ns.js";
import type { SystemdHost } from "../support/systemd-host.js";

const DC = "dc-r32";
const HOSTS = [
  { name: "r32h1", address: "198.18.33.11" },
  { name: "r32h2", address: "198.18.33.12" },
];
const LAB = "r32";
const SUBNET = "10.10.52.0/26";
const WORKDIR = "/var/lib/aplspawn/r32-cluster-routes-test";
/** The containers' lab addresses, host by host. */
const ON_HOST = [
  ["10.10.52.10", "10.10.52.11"],
  ["10.10.52.12", "10.10.52.13"],
];
/** The routes' chain on every host (config/cluster.ts). */
const CHAIN = `APLRT${vniOf(LAB).toString(16).padStart(6, "0").toUpperCase()}`;

/** "TASK on HOST" for each task that reported changed in a playbook's output (as `run up` shows it). */
function changedTasks(out: string): string[] {
  const found: string[] = [];
  let task = "";
  for (const line of out.split("\n")) {
    const t = /TASK \[(.+)\] \*+/.exec(line);
    if (t) task = t[1]!;
    const c = /\bchanged: \[([^\]]+)\]/.exec(line);
    if (c && !found.includes(`${task} on ${c[1]}`)) found.push(`${task} on ${c[1]}`);
  }
  return found;
}

test("a lab across two hosts with overlay routes: Ansible reaches all 4 containers, each reaches the others by their lab addresses with full 1500-byte packets; a frame with a peer's lab source from a machine on the L2 that is no peer is dropped (and delivered with a source check alone); run down leaves each host and the control node as they were", {
  skip,
  timeout: 30 * 60_000,
}, async (t2) => {
  await withDatacenter(
    {
      bridge: DC,
      gateway: "198.18.33.1/24",
      hosts: HOSTS,
      workdir: WORKDIR,
      prefix: "aplspawn-r32-",
      files: { "tool.py": TOOL_PY, "probe.py": { text: PROBE_PY, mode: 0o755 } },
      binds: { "tool.py": "/r32-tool.py" },
      foreignSources: true,
    },
    async (d) => {
      const { hosts, dc, dir, cli } = d;
      const tool = join(dir, "tool.py");
      // Strict reverse-path filtering on the hosts: a peer's lab address is routed through the
      // link it arrives on, so the routes pass it.
      for (const h of hosts)
        ok(
          await h.run([
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.rp_filter=1",
            "net.ipv4.conf.default.rp_filter=1",
          ]),
          "strict rp_filter",
        );
      const [h1] = hosts as [SystemdHost, SystemdHost];
      const lab = await labAcross(d, {
        name: LAB,
        workdir: WORKDIR,
        hosts: HOSTS,
        onHost: ON_HOST,
        address: "10.10.52.1/26",
        ipRange: ["10.10.52.10", "10.10.52.40"],
        overlay: "routes",
        // What is tested is the routes between the hosts, not the containers' boot (the other
        // cluster tests boot theirs): sshd alone starts in each.
        init: "script",
      });
      const { asBefore } = lab;

      try {
        // A fault on the control node once every host's share and routes are up: the rollback
        // takes the routes, proxy entries and chains down on both hosts with the shares.
        const failed = await dc([
          "env",
          "APLSPAWN_FAIL_AFTER=cluster.hosts",
          "node",
          CLI,
          "-c",
          join(dir, "lab.yaml"),
          "run",
          "up",
        ]);
        assert.notEqual(
          failed.exitCode,
          0,
          `run up succeeded with a fault after the hosts:\n${failed.stdout}`,
        );
        assert.match(failed.stdout, /Taking down each host's share and the overlay/, failed.stdout);
        await asBefore("after the failed up");

        await lab.up(t2, "run up with cluster.overlay routes");
        // What the routes rely on, as the hosts have it (shown, for the docs).
        t2.diagnostic(
          ok(
            await h1.run([
              "sysctl",
              "net.ipv4.ip_forward",
              "net.ipv4.conf.all.rp_filter",
              "net.ipv4.conf.host0.rp_filter",
              "net.ipv4.conf.br-r32.rp_filter",
              "net.ipv4.conf.br-r32.proxy_arp",
            ]),
            "sysctls",
          ).stdout.replace(/\n/g, "; "),
        );
        // No VXLAN: the other host's containers are routed through it, and answered for on the bridge.
        assert.match(
          ok(await h1.run(["ip", "-4", "route", "show", "10.10.52.12"]), "route").stdout,
          /^10\.10\.52\.12 via 198\.18\.33\.12 dev host0/,
        );
        assert.match(
          ok(await h1.run(["ip", "neigh", "show", "proxy", "dev", "br-r32"]), "proxy").stdout,
          /10\.10\.52\.13/,
        );
        assert.doesNotMatch(ok(await h1.run(["ip", "-o", "link"]), "links").stdout, /aplvx/);

        await lab.reachesAll(1500, "every container reaches every other across the hosts");

        // The attack: the datacenter's namespace (on the hosts' L2, no host of the lab) sends the
        // first host a frame for its container 10.10.52.10 with the lab source 10.10.52.12 (a
        // container of the second host), and one with its own source.
        const target = ON_HOST[0]![0]!;
        const leader = ok(
          await h1.run(["machinectl", "show", `r32-${target.split(".")[3]}`, "-p", "Leader", "--value"]),
          "the container's leader",
        ).stdout.trim();
        const mac1 = ok(await h1.run(["cat", "/sys/class/net/host0/address"]), "MAC").stdout.trim();
        const attack = async (port: string): Promise<string> => {
          const [got] = await Promise.all([
            h1.run([
              "nsenter",
              `--net=/proc/${leader}/ns/net`,
              "python3",
              "/r32-tool.py",
              "listen",
              port,
              "4",
            ]),
            (async () => {
              await sleep(1000);
              ok(
                await dc(["python3", tool, "frame", ON_HOST[1]![0]!, target, mac1, port, "lab-source", DC]),
                "a frame with a peer's lab source",
              );
              ok(
                await dc(["python3", tool, "frame", "198.18.33.1", target, mac1, port, "own-source", DC]),
                "a frame with the outsider's own source",
              );
            })(),
          ]);
          return ok(got, "listening in the container").stdout;
        };
        const first = await attack("47101");
        assert.doesNotMatch(first, /got /, `a frame from no peer reached the container:\n${first}`);

        // The control: the chain checking the source address alone lets the same frame through.
        ok(
          await h1.run([
            "sh",
            "-c",
            `printf '*filter\\n-F ${CHAIN}\\n-A ${CHAIN} -s ${SUBNET} -i host0 -o br-r32 -j ACCEPT\\nCOMMIT\\n' | iptables-restore -w --noflush`,
          ]),
          "a chain of source checks alone",
        );
        const naive = await attack("47102");
        assert.match(naive, /got lab-source from 10\.10\.52\.12/, naive);

        // A second up puts the chain back.
        const second = ok(await cli(["run", "up"]), "run up again");
        // Idempotent: only the chain changed, on the first host only (besides aplspawn's own up
        // on each host and its answer kept on the control node).
        assert.deepEqual(
          changedTasks(second.stdout).filter(
            (x) => !x.startsWith("The host's share up") && !x.startsWith("The host's answer"),
          ),
          [
            "The routes' containment (a lab source from a peer's own addresses and MAC, nothing else) on r32h1",
          ],
          second.stdout,
        );
        const again = await attack("47103");
        assert.doesNotMatch(again, /got /, `a frame from no peer reached the container:\n${again}`);
        await lab.reachesAll(1500, "every container still reaches every other");

        await lab.down();
      } catch (e) {
        await cli(["run", "down", "--purge"]);
        throw e;
      }
    },
  );
});
