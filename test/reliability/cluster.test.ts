// A lab across hosts, for real: three hosts simulated as booted systemd hosts (test/support/
// systemd-host.ts, booted at once), each with sshd and aplspawn bound in, on one "datacenter"
// bridge in a network namespace of the test's own (a TestNamespace: nothing named in /run/netns, a
// private index of labs), which drops every packet whose source is not the sending host's own
// address (as a cloud network does), so the lab's traffic between hosts must ride the overlay. The
// control node (this test, in the datacenter's namespace) runs `aplspawn run up` with `cluster`, a
// lab of 6 containers, 2 on each host. First with one host's VXLAN port taken, so that its part of
// the overlay fails after every share is up: the up fails naming the host, and every host and the
// control node are as they were. Then for good: Ansible reaches all 6 through the one inventory and
// a role converges on them with idempotence; every container reaches every other by its lab address
// with packets of its link's full MTU and "don't fragment"; a packet with a lab source sent on the
// datacenter outside the overlay is dropped there; a VXLAN packet of the lab's VNI reaches a
// container from a peer host, never from anyone else on the datacenter. `run down` leaves each host
// and the control node as they were.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { vniOf } from "../../config/cluster.js";
import { type Datacenter, labAcross, ok, withDatacenter } from "../support/cluster.js";
import { PROBE_PY, TOOL_PY } from "../support/cluster-probes.js";
import { skip } from "../support/ns.js";
import type { SystemdHost } from "../support/systemd-host.js";
import { until } from "../support/wait.js";

const HOSTS = [
  { name: "x32h1", address: "192.0.2.11" },
  { name: "x32h2", address: "192.0.2.12" },
  { name: "x32h3", address: "192.0.2.13" },
];
const LAB = "x32";
const WORKDIR = "/var/lib/aplspawn/x32-cluster-test";
/** The containers' lab addresses, host by host (the split gives each host the next two). */
const ON_HOST = [
  ["10.10.44.10", "10.10.44.11"],
  ["10.10.44.12", "10.10.44.13"],
  ["10.10.44.14", "10.10.44.15"],
];
/** The lab's links' MTU across hosts: the datacenter's 1500 less the VXLAN's 50 bytes. */
const LAB_MTU = 1450;

/** Packets the datacenter dropped of those a host's port sent from a foreign IPv4 source. */
async function droppedFrom(d: Datacenter, port: string): Promise<number> {
  const l = ok(await d.dc(["ebtables", "-L", "FORWARD", "--Lc"]), "ebtables counters").stdout;
  const rule = l.split("\n").find((x) => x.includes(`-i ${port} `) && x.includes("--ip-src"));
  return Number(/pcnt = (\d+)/.exec(rule ?? "")?.[1] ?? Number.NaN);
}

/** The test's packet tool (cluster-probes.ts TOOL_PY, bound in at /x32-tool.py) run on a host. */
const hostTool = (h: SystemdHost, ...args: string[]) => h.run(["python3", "/x32-tool.py", ...args]);

/** The PLAY RECAP's changed= of each container, and whether every one ran without failure. */
function recap(out: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const [, host, changed, failed] of out.matchAll(
    /^(x32-\d+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)/gm,
  ))
    if (failed === "0") m.set(host!, Number(changed));
  return m;
}

/** A small role across the lab: a file, a template, a systemd unit restarted by a handler. */
const ROLE: Record<string, string> = {
  "site.yml": `- hosts: all
  gather_facts: false
  become: true
  roles: [x32role]
`,
  "roles/x32role/tasks/main.yml": `- name: A file
  ansible.builtin.copy: {dest: /etc/x32-marker, content: "lab x32\\n", mode: "0644"}
- name: A template
  ansible.builtin.template: {src: x32.conf.j2, dest: /etc/x32.conf, mode: "0644"}
  notify: Restart x32-demo
- name: A systemd unit
  ansible.builtin.copy:
    dest: /etc/systemd/system/x32-demo.service
    mode: "0644"
    content: |
      [Unit]
      Description=x32 demo
      [Service]
      ExecStart=/bin/sleep infinity
  notify: Restart x32-demo
- name: The unit runs
  ansible.builtin.systemd: {name: x32-demo, state: started, daemon_reload: true}
`,
  "roles/x32role/handlers/main.yml": `- name: Restart x32-demo
  ansible.builtin.systemd: {name: x32-demo, state: restarted, daemon_reload: true}
`,
  "roles/x32role/templates/x32.conf.j2": `host={{ inventory_hostname }} lab={{ groups['all'] | sort | join(',') }}
`,
};

test("a lab across three hosts: a fault on one mid-up rolls back all three; Ansible reaches all 6 containers through one inventory and a role converges with idempotence; containers reach each other across hosts with full-size packets over the VXLAN while the datacenter drops lab sources and the overlay takes nothing from non-peers; run down leaves each host and the control node as they were", {
  skip,
  timeout: 40 * 60_000,
}, async (t2) => {
  await withDatacenter(
    {
      bridge: "dc0",
      gateway: "192.0.2.1/24",
      hosts: HOSTS,
      workdir: WORKDIR,
      prefix: "aplspawn-x32c-",
      files: { "tool.py": TOOL_PY, "probe.py": { text: PROBE_PY, mode: 0o755 }, ...ROLE },
      binds: { "tool.py": "/x32-tool.py" },
    },
    async (d) => {
      const { hosts, ports, dc, dir, cli } = d;
      const tool = join(dir, "tool.py");
      const [h1, h2, h3] = hosts as [SystemdHost, SystemdHost, SystemdHost];
      const lab = await labAcross(d, {
        name: LAB,
        workdir: WORKDIR,
        hosts: HOSTS,
        onHost: ON_HOST,
        address: "10.10.44.1/26",
        ipRange: ["10.10.44.10", "10.10.44.40"],
      });
      const { asBefore } = lab;
      const inv = lab.inventory;
      try {
        // A fault mid-up: the third host's VXLAN port is taken (its part of the overlay cannot come
        // up) once every host's share is up and the others' VXLANs are made.
        ok(
          await h3.run([
            "systemd-run",
            "--unit=x32-hold",
            "--collect",
            "python3",
            "-c",
            "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 4789)); time.sleep(3600)",
          ]),
          "holding the VXLAN port on the third host",
        );
        await until(10_000, 100, async () =>
          (await h3.run(["sh", "-c", "ss -lun | grep -q ':4789 '"])).exitCode === 0 ? true : undefined,
        );
        const failed = await cli(["run", "up"]);
        ok(await h3.run(["systemctl", "stop", "x32-hold"]), "releasing the VXLAN port");
        assert.notEqual(
          failed.exitCode,
          0,
          `run up succeeded with the third host's VXLAN port taken:\n${failed.stdout}`,
        );
        const said = `${failed.stdout}\n${failed.stderr}`;
        assert.match(said, /The VXLAN on the lab's bridge\] failed on x32h3/, said);
        assert.match(said, /Taking down each host's share and the overlay/, said);
        await asBefore("after the failed up");

        await lab.up(t2, "run up with cluster");
        // Ansible from the control node reaches all 6, each through its host; every container
        // reaches every lab address (each other host's containers over the VXLAN), by TCP and by
        // an echo of its link's full MTU with "don't fragment".
        await lab.reachesAll(LAB_MTU, "every container reaches every other across the hosts");
        // A role across all 6: it converges, and a second run changes nothing.
        const book = () => dc(["ansible-playbook", "-i", inv, "site.yml"]).then((r) => ok(r, "the role"));
        const first = await book();
        assert.equal(recap(first.stdout).size, 6, first.stdout);
        assert.ok(
          [...recap(first.stdout).values()].every((n) => n > 0),
          first.stdout,
        );
        assert.match(first.stdout, /RUNNING HANDLER \[x32role : Restart x32-demo\]/);
        const second = await book();
        assert.deepEqual(
          [...recap(second.stdout).entries()].sort(),
          ON_HOST.flat().map((ip) => [`x32-${ip.split(".")[3]}`, 0]),
          `the second run changed something:\n${second.stdout}`,
        );

        // The datacenter drops what a host sends with a lab source outside the overlay (so the lab's
        // traffic above rode the VXLAN): the first host sends to the second from its own address,
        // then a frame from a container's address straight out of its link (a packet socket: the
        // lab's NAT on the host would otherwise rewrite the source); only the first arrives, and the
        // datacenter counted the other.
        const dropped = await droppedFrom(d, ports[0]!);
        const mac2 = ok(await h2.run(["cat", "/sys/class/net/host0/address"]), "MAC").stdout.trim();
        const [heard] = await Promise.all([
          hostTool(h2, "listen", "47002", "4"),
          (async () => {
            await sleep(1000);
            const to = HOSTS[1]!.address;
            ok(await hostTool(h1, "spoof", HOSTS[0]!.address, to, "47002", "own-source"), "own source");
            ok(await hostTool(h1, "frame", ON_HOST[0]![0]!, to, mac2, "47002", "lab-source"), "lab source");
          })(),
        ]);
        assert.match(heard.stdout, /got own-source from 192\.0\.2\.11/, heard.stdout);
        assert.doesNotMatch(heard.stdout, /lab-source/, heard.stdout);
        assert.ok(
          (await droppedFrom(d, ports[0]!)) >= dropped + 3,
          "the datacenter did not drop the lab source",
        );

        // The overlay carries only its peers' packets: a VXLAN packet of the lab's VNI for a
        // container on the second host reaches it from the first host, never from the datacenter's
        // own address (anyone else on the hosts' network).
        const target = ON_HOST[1]![0]!;
        const leader = ok(
          await h2.run(["machinectl", "show", `x32-${target.split(".")[3]}`, "-p", "Leader", "--value"]),
          "the container's leader",
        ).stdout.trim();
        const netns = `--net=/proc/${leader}/ns/net`;
        const mac = /link\/ether ([0-9a-f:]{17})/.exec(
          ok(await h2.run(["nsenter", netns, "ip", "-o", "link", "show", "host0"]), "host0").stdout,
        )?.[1];
        assert.ok(mac, "no MAC address of host0");
        const vni = String(vniOf(LAB));
        const [got] = await Promise.all([
          h2.run(["nsenter", netns, "python3", "/x32-tool.py", "listen", "47001", "5"]),
          (async () => {
            await sleep(1000);
            ok(
              await dc([
                "python3",
                tool,
                "vxlan",
                HOSTS[1]!.address,
                vni,
                mac,
                target,
                "47001",
                "from-outsider",
              ]),
              "VXLAN from the datacenter",
            );
            ok(
              await hostTool(h1, "vxlan", HOSTS[1]!.address, vni, mac, target, "47001", "from-peer"),
              "VXLAN from a peer",
            );
          })(),
        ]);
        assert.match(got.stdout, /got from-peer from 10\.10\.44\.50/, got.stdout);
        assert.doesNotMatch(got.stdout, /from-outsider/, got.stdout);

        // Down keeps the lab's key on the control node (as for a lab on one host); --purge takes it.
        await lab.down();
      } catch (e) {
        // A failed check still takes the lab down: the hosts' loop devices are this machine's.
        await cli(["run", "down", "--purge"]);
        throw e;
      }
    },
  );
});
