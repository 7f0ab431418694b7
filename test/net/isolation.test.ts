// Labs reach nothing they were not given, attacked for real (issue #28, item 3): another lab's
// containers (whichever lab came up first), a docker0-like bridge, the LAN's private and CGNAT
// addresses, and anything with a source address the lab was not given. Containers, LAN, world and
// the docker-like bridge's container are namespaces of the test (test/support/net-peers.ts).
import assert from "node:assert/strict";
import { assertNoResidue, initTables, type LabConfig, type NetLab, netLabTest, ok } from "../support/lab.js";
import { netTest, useLegacy } from "../support/net-lab.js";
import { connect, lanPeer, listen, must, type Peer, peer, udpListen, udpSend } from "../support/net-peers.js";
import type { TestNamespace } from "../support/ns.js";

/** The lab's container 10.10.<sub>.10 on `bridge`, with `extra` addresses it was not given. */
const container = (ns: TestNamespace, hostIf: string, bridge: string, sub: number, extra: string[] = []) =>
  peer(ns, { hostIf, bridge, address: `10.10.${sub}.10/26`, gateway: `10.10.${sub}.1`, extra });

/**
 * The world: 198.51.100.2 behind the host's 198.51.100.1, with no route back to any lab, so only
 * traffic masqueraded to the host's address gets an answer.
 */
const world = (ns: TestNamespace) =>
  peer(ns, {
    hostIf: "wan0",
    hostAddress: "198.51.100.1/24",
    address: "198.51.100.2/24",
    gateway: "198.51.100.1",
    routes: [],
  });

/** Run `fn`, then stop the servers and remove the peers, whatever happened. */
async function withPeers(peers: Peer[], stops: (() => void)[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } finally {
    for (const stop of stops) stop();
    for (const p of peers) await p.destroy();
  }
}

/**
 * Two labs in one namespace, alpha (10.10.12.0/26, letting in the LAN and beta's subnet) and beta
 * (10.10.13.0/26, asking to reach alpha), each brought up first in turn: what their containers,
 * the LAN and the world reach, by which lab came up first. Both labs are taken down after each
 * round, leaving nothing.
 */
async function twoLabs(a: NetLab, legacy: boolean): Promise<Record<string, Record<string, string>>> {
  const { ns } = a;
  if (legacy) {
    await useLegacy(ns, a.dir);
    await initTables(ns);
    a.before = await ns.snapshot();
  }
  // Beta asks to reach alpha and alpha lets beta's subnet in: two labs still never meet.
  const b: LabConfig = await a.add("beta", 13, {
    network: { bridge: "brbeta", chain: "BETA", allowTo: ["10.10.12.0/26"] },
  });
  const results: Record<string, Record<string, string>> = {};
  for (const order of [
    [a, b],
    [b, a],
  ]) {
    const first = order[0]?.name ?? "";
    for (const l of order) ok(await l.cli(["run", "netup"]), `netup of ${l.name}`);
    const cA = await container(ns, "va10", "bralpha", 12);
    // Beta's container holds an address of the LAN, which alpha lets in.
    const cB = await container(ns, "vb10", "brbeta", 13, ["192.168.77.5/32"]);
    const lan = await lanPeer(ns, ["10.10.12.0/26", "10.10.13.0/26"]);
    const wan = await world(ns);
    const udp = await udpListen(cA.ns, "10.10.12.10", 9999);
    const stops = [
      await listen(cA.ns, "10.10.12.10", 22),
      await listen(cB.ns, "10.10.13.10", 22),
      await listen(lan.ns, "192.168.77.2", 80),
      await listen(wan.ns, "198.51.100.2", 80),
      udp.stop,
    ];
    await withPeers([cA, cB, lan, wan], stops, async () => {
      const seen: Record<string, string> = {
        "beta to alpha": await connect(cB.ns, "10.10.12.10", 22),
        "alpha to beta": await connect(cA.ns, "10.10.13.10", 22),
        "the LAN to alpha (allowFrom)": await connect(lan.ns, "10.10.12.10", 22),
        "the LAN to beta": await connect(lan.ns, "10.10.13.10", 22),
        "alpha to the LAN": await connect(cA.ns, "192.168.77.2", 80),
        "beta to the world": await connect(cB.ns, "198.51.100.2", 80, true),
      };
      // Beta's container sends as the LAN, then the LAN itself: alpha gets the LAN's only.
      await udpSend(cB.ns, "10.10.12.10", 9999, "spoofed", "192.168.77.5");
      await udpSend(lan.ns, "10.10.12.10", 9999, "marker");
      seen["datagrams alpha got"] = (await udp.waitFor("marker")).join(", ");
      results[`${first} up first`] = seen;
    });
    for (const l of [...order].reverse()) ok(await l.cli(["run", "netdown"]), `netdown of ${l.name}`);
    await assertNoResidue(a, `after both netdowns (${first} up first)`);
  }
  return results;
}

/** What twoLabs must find, whichever lab came up first. */
const TWO_LABS = {
  "beta to alpha": "timeout",
  "alpha to beta": "timeout",
  "the LAN to alpha (allowFrom)": "open",
  "the LAN to beta": "timeout",
  "alpha to the LAN": "refused",
  "beta to the world": "open from 198.51.100.1",
  "datagrams alpha got": "192.168.77.2 marker",
};

for (const legacy of [false, true])
  netLabTest(
    `two labs, either up first: neither reaches the other (allowTo and allowFrom notwithstanding), allowFrom opens the uplink only, a spoofed source is dropped${legacy ? "; with the legacy backend" : ""}`,
    {
      name: "alpha",
      subnet: 12,
      network: {
        bridge: "bralpha",
        chain: "ALPHA",
        allowFrom: ["192.168.77.0/24", "10.10.13.0/26"],
      },
    },
    async (a) =>
      assert.deepEqual(await twoLabs(a, legacy), {
        "alpha up first": TWO_LABS,
        "beta up first": TWO_LABS,
      }),
  );

netTest(
  "the lab reaches the world through NAT, not a docker0-like bridge, nor the LAN's private or CGNAT addresses unless network.allowTo names them",
  {},
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]), "netup");
    // A docker0: its own bridge and subnet on the host, a container of its own behind it.
    for (const args of [
      ["link", "add", "dock0", "type", "bridge"],
      ["addr", "add", "172.17.0.1/16", "dev", "dock0"],
      ["link", "set", "dock0", "up"],
    ])
      await must(ns, "ip", args);
    await must(ns, "sysctl", ["-q", "-w", "net/ipv6/conf/dock0/disable_ipv6=1"]);
    const c = await container(ns, "vc10", "nspawnd0", 12);
    const wan = await world(ns);
    const docker = await peer(ns, {
      hostIf: "vdock",
      bridge: "dock0",
      address: "172.17.0.2/16",
      gateway: "172.17.0.1",
    });
    // The LAN, with a CGNAT address (a carrier's, or a tailnet's) behind it too.
    const lan = await lanPeer(ns, ["10.10.12.0/26"], ["100.64.7.2/32"]);
    await must(ns, "ip", ["route", "add", "100.64.7.0/24", "via", "192.168.77.2"]);
    const stops = [
      await listen(wan.ns, "198.51.100.2", 80),
      await listen(lan.ns, "192.168.77.2", 80),
      await listen(lan.ns, "100.64.7.2", 80),
      await listen(docker.ns, "172.17.0.2", 80),
      await listen(ns, "172.17.0.1", 81),
    ];
    const reach = async () => ({
      world: await connect(c.ns, "198.51.100.2", 80, true),
      "the LAN": await connect(c.ns, "192.168.77.2", 80, true),
      CGNAT: await connect(c.ns, "100.64.7.2", 80),
      "the docker bridge's container": await connect(c.ns, "172.17.0.2", 80),
      "the host on the docker bridge": await connect(c.ns, "172.17.0.1", 81),
    });
    await withPeers([c, wan, docker, lan], stops, async () => {
      assert.deepEqual(await reach(), {
        world: "open from 198.51.100.1",
        "the LAN": "refused",
        CGNAT: "refused",
        "the docker bridge's container": "refused",
        "the host on the docker bridge": "refused",
      });
      // The LAN given: reached, masqueraded to the host's address there; nothing else opens.
      await lab.writeConfig({
        network: { bridge: "nspawnd0", chain: "NSPAWN", allowTo: ["192.168.77.0/24"] },
      });
      ok(await lab.cli(["run", "netup"]), "netup with allowTo");
      assert.deepEqual(await reach(), {
        world: "open from 198.51.100.1",
        "the LAN": "open from 192.168.77.1",
        CGNAT: "refused",
        "the docker bridge's container": "refused",
        "the host on the docker bridge": "refused",
      });
    });
    await must(ns, "ip", ["link", "del", "dock0"]);
    ok(await lab.cli(["run", "netdown"]), "netdown");
    await assertNoResidue(lab, "after netdown");
  },
);

netTest(
  "packets from the bridge with a source outside the lab's subnet are dropped, to the world and to the host",
  { hostPorts: ["udp/5353"] },
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]), "netup");
    const c = await container(ns, "vc10", "nspawnd0", 12, ["203.0.113.5/32"]);
    const wan = await world(ns);
    const out = await udpListen(wan.ns, "198.51.100.2", 9999);
    const host = await udpListen(ns, "10.10.12.1", 5353);
    await withPeers([c, wan], [out.stop, host.stop], async () => {
      // Each time the spoofed datagram goes first and a true one after it, on the same path.
      await udpSend(c.ns, "198.51.100.2", 9999, "spoofed", "203.0.113.5");
      await udpSend(c.ns, "198.51.100.2", 9999, "marker");
      assert.deepEqual(await out.waitFor("marker"), ["198.51.100.1 marker"], "to the world");
      await udpSend(c.ns, "10.10.12.1", 5353, "spoofed", "203.0.113.5");
      await udpSend(c.ns, "10.10.12.1", 5353, "marker");
      assert.deepEqual(await host.waitFor("marker"), ["10.10.12.10 marker"], "to a hostPorts port");
    });
    ok(await lab.cli(["run", "netdown"]), "netdown");
    await assertNoResidue(lab, "after netdown");
  },
);
