// Network containment, attacked for real: a "container" (a namespace of its own on the lab's
// bridge, addressed in the subnet, the bridge its gateway: what a container's traffic is to the
// host), a "cloud" serving metadata at 169.254.169.254 behind the host, and a "LAN" peer routed to
// the lab through the host. Each tries what it must not be able to do, and what it may.
import assert from "node:assert/strict";
import { assertNoResidue, ok } from "../support/lab.js";
import { netTest } from "../support/net-lab.js";
import { connect, lanPeer, listen, must, peer } from "../support/net-peers.js";

netTest(
  "the lab reaches the host only on hostPorts, never cloud metadata; from outside only allowFrom and forwards reach it",
  {},
  async (lab) => {
    const { ns } = lab;
    const container = "nettest-10";
    await lab.writeConfig({
      network: {
        bridge: "nspawnd0",
        chain: "NSPAWN",
        hostPorts: ["tcp/3142"],
        forwards: [{ hostPort: 2222, container, port: 22 }],
      },
    });
    ok(await lab.cli(["run", "netup"]), "netup");
    const ipv6 = async (s: string) =>
      (await ns.run("cat", [`/proc/sys/net/ipv6/conf/nspawnd0/${s}`])).stdout.trim();
    assert.deepEqual([await ipv6("accept_ra"), await ipv6("disable_ipv6")], ["0", "1"], "the bridge in IPv6");

    const c = await peer(ns, {
      hostIf: "vc10",
      bridge: "nspawnd0",
      address: "10.10.12.10/26",
      gateway: "10.10.12.1",
    });
    const cloud = await peer(ns, {
      hostIf: "meta0",
      hostAddress: "169.254.1.1/16",
      address: "169.254.169.254/16",
      gateway: "169.254.1.1",
    });
    const lan = await lanPeer(ns, ["10.10.12.0/26"]);
    const stops = [
      await listen(ns, "10.10.12.1", 3142),
      await listen(ns, "10.10.12.1", 8080),
      await listen(ns, "0.0.0.0", 9090),
      await listen(cloud.ns, "169.254.169.254", 80),
      await listen(c.ns, "10.10.12.10", 22),
    ];
    try {
      // The host itself: only the listed port; the rest is refused at once (not left to time out).
      assert.equal(await connect(c.ns, "10.10.12.1", 3142), "open", "a hostPorts port");
      assert.equal(await connect(c.ns, "10.10.12.1", 8080), "refused", "the host's other services");
      assert.equal(
        await connect(c.ns, "192.168.77.1", 9090),
        "refused",
        "the host's address on another network",
      );
      // Cloud metadata behind the host: out of the lab's reach, still within the host's.
      assert.equal(await connect(c.ns, "169.254.169.254", 80), "refused", "cloud metadata from the lab");
      assert.equal(await connect(ns, "169.254.169.254", 80), "open", "cloud metadata from the host");
      // From the LAN: no new connection into the lab, but the forwarded port reaches the container.
      assert.equal(await connect(lan.ns, "10.10.12.10", 22), "timeout", "the LAN into the lab");
      assert.equal(await connect(lan.ns, "192.168.77.1", 2222), "open", "a forwarded port");
      // The LAN's private addresses are not the lab's (network.allowTo gives them): refused at once.
      // test/net/isolation.test.ts has the lab out to the world, and allowTo.
      const stopLan = await listen(lan.ns, "192.168.77.2", 8000);
      assert.equal(await connect(c.ns, "192.168.77.2", 8000), "refused", "the lab out to the LAN");
      stopLan();

      // Opted out: metadata reachable, the LAN's subnet allowed in.
      await lab.writeConfig({
        network: {
          bridge: "nspawnd0",
          chain: "NSPAWN",
          hostPorts: ["tcp/3142"],
          allowMetadata: true,
          allowFrom: ["192.168.77.0/24"],
        },
      });
      // netdown refuses while a container is on the bridge: this one steps off and back on.
      await must(ns, "ip", ["link", "set", "vc10", "nomaster"]);
      ok(await lab.cli(["run", "netdown"]), "netdown");
      ok(await lab.cli(["run", "netup"]), "netup with the opt-outs");
      await must(ns, "ip", ["link", "set", "vc10", "master", "nspawnd0", "up"]);
      assert.equal(await connect(c.ns, "169.254.169.254", 80), "open", "metadata with allowMetadata");
      assert.equal(await connect(lan.ns, "10.10.12.10", 22), "open", "the LAN with allowFrom");
      assert.equal(await connect(lan.ns, "192.168.77.1", 2222), "refused", "a forward no longer configured");
    } finally {
      for (const stop of stops) stop();
      for (const p of [c, cloud, lan]) await p.destroy();
    }
    ok(await lab.cli(["run", "netdown"]), "netdown");
    await assertNoResidue(lab, "after netdown");
  },
);

netTest("a bridge that was there keeps its IPv6 settings after netdown", {}, async (lab) => {
  const { ns } = lab;
  await must(ns, "ip", ["link", "add", "name", "nspawnd0", "type", "bridge"]);
  await must(ns, "sysctl", ["-q", "-w", "net/ipv6/conf/nspawnd0/accept_ra=2"]);
  const read = async () =>
    Promise.all(
      ["accept_ra", "disable_ipv6"].map(async (s) =>
        (await ns.run("cat", [`/proc/sys/net/ipv6/conf/nspawnd0/${s}`])).stdout.trim(),
      ),
    );
  assert.deepEqual(await read(), ["2", "0"]);
  ok(await lab.cli(["run", "netup"]), "netup");
  assert.deepEqual(await read(), ["0", "1"]);
  ok(await lab.cli(["run", "netdown"]), "netdown");
  assert.deepEqual(await read(), ["2", "0"], "netdown puts back what it found");
  await must(ns, "ip", ["link", "del", "nspawnd0"]);
});
