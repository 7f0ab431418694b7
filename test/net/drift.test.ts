// What netup and netdown do with a host that is not as aplspawn left it: a bridge that was already
// there, a rule deleted by hand, containers still attached.

import assert from "node:assert/strict";
import { summary, taskIds } from "../support/json-events.js";
import { assertNoResidue, ok, sameSnapshot, settled } from "../support/lab.js";
import { netTest, probes, rules } from "../support/net-lab.js";

const sorted = (s: string) => s.split("\n").sort().join("\n");

netTest(
  "a bridge that existed before netup survives netdown; what netup added to it is undone",
  {},
  async (lab) => {
    const { ns } = lab;
    // Up once and down again, as any bridge in use has been: the kernel gives a link its qdisc
    // the first time it comes up and keeps it, which is not aplspawn's to undo.
    for (const args of [
      ["link", "add", "name", "nspawnd0", "type", "bridge"],
      ["link", "set", "dev", "nspawnd0", "up"],
      ["link", "set", "dev", "nspawnd0", "down"],
    ])
      assert.equal((await ns.run("ip", args)).exitCode, 0);
    lab.before = await ns.snapshot();
    const up = ok(await lab.cli(["--json", "run", "netup"]));
    // (The rules of the chains netup made came with their chain: their own tasks find them.)
    assert.deepEqual(
      taskIds(up, "ok").filter((id) => !/\.rule\[/.test(id)),
      ["net.bridge"],
      "the existing bridge is used, not created",
    );
    assert.equal(summary(up).changed, 14);
    ok(await lab.cli(["run", "netdown"]));
    await assertNoResidue(lab, "after netdown");
    assert.equal(
      (await ns.run("ip", ["link", "show", "dev", "nspawnd0"])).exitCode,
      0,
      "the bridge is still there",
    );

    // Fully configured beforehand: netup changes nothing about the bridge, netdown leaves it up
    // with its address.
    await ns.run("ip", ["addr", "add", "10.10.12.1/26", "brd", "+", "dev", "nspawnd0"]);
    await ns.run("ip", ["link", "set", "dev", "nspawnd0", "up"]);
    const configured = settled(await ns.snapshot());
    const up2 = ok(await lab.cli(["--json", "run", "netup"]));
    assert.deepEqual(
      taskIds(up2, "ok").filter((id) => !/\.rule\[/.test(id)),
      ["net.bridge", "net.bridge.address", "net.bridge.up"],
    );
    ok(await lab.cli(["run", "netdown"]));
    sameSnapshot(settled(await ns.snapshot()), configured, "after the second netdown");
  },
);

// Every kind of rule there is: a host port, a subnet let in, a subnet let out to, a port forward.
const EVERY_RULE = {
  hostPorts: ["tcp/3142"],
  allowFrom: ["192.168.77.0/24"],
  allowTo: ["192.168.88.0/24"],
  forwards: [{ hostPort: 2222, container: "nettest-10", port: 22 }],
};

/**
 * In each of aplspawn's filter chains, the top part (accepts, returns, jumps) over the bottom part
 * (refusals; in NSPAWN-OUT, its one accept of the world): a rule put back lands in its part.
 */
function partsInOrder(text: string): void {
  const filterTable = text.slice(0, text.indexOf("*nat"));
  for (const [chain, bottom] of [
    ["NSPAWN", ["REJECT", "DROP"]],
    ["NSPAWN-IN", ["REJECT", "DROP"]],
    ["NSPAWN-OUT", ["ACCEPT"]],
  ] as const) {
    const targets = filterTable
      .split("\n")
      .filter((l) => l.startsWith(`-A ${chain} `))
      .map((l) => / -j (\S+)/.exec(l)?.[1] ?? "");
    const first = targets.findIndex((t) => (bottom as readonly string[]).includes(t));
    assert.ok(
      first >= 0 && targets.slice(first).every((t) => (bottom as readonly string[]).includes(t)),
      `${chain}'s top part over its bottom part:\n${text}`,
    );
  }
}

netTest(
  "netup alone restores a rule, a jump, an address or a setting changed by hand, and only that",
  EVERY_RULE,
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]));
    const full = await rules(ns);
    const fullAddrs = settled(await ns.snapshot()).addrs;
    partsInOrder(full);
    const mark = "-m comment --comment aplspawn:nettest";
    // Each drift is undone by a command line split at its spaces (no argument holds one).
    const mine = `-s 10.10.12.0/26 -i nspawnd0`;
    const notLab = (dir: string) => `-m devgroup ! --${dir}-group 0x41504c53`;
    const drifts: { id: string; undo: string }[] = [
      {
        id: "net.filter.rule[return]",
        undo: `iptables -w -D NSPAWN ! -i nspawnd0 -o nspawnd0 ${notLab("src")} -m conntrack --ctstate RELATED,ESTABLISHED ${mark} -j ACCEPT`,
      },
      {
        id: "net.filter.jump[in]",
        undo: "iptables -w -D FORWARD -i nspawnd0 -m comment --comment aplspawn:nettest -j NSPAWN",
      },
      {
        id: "net.nat.rule[masquerade]",
        undo: "iptables -w -t nat -D NSPAWN -s 10.10.12.0/26 ! -d 10.10.12.0/26 ! -o nspawnd0 -m comment --comment aplspawn:nettest -j MASQUERADE",
      },
      { id: "net.bridge.address", undo: "ip addr del 10.10.12.1/26 dev nspawnd0" },
      { id: "net.forwarding", undo: "sysctl -q -w net.ipv4.ip_forward=0" },
      { id: "net.bridge.ipv6", undo: "sysctl -q -w net/ipv6/conf/nspawnd0/accept_ra=1" },
      { id: "net.bridge.group", undo: "ip link set dev nspawnd0 group 0" },
      {
        id: "net.filter.rule[internal]",
        undo: `iptables -w -D NSPAWN ${mine} -o nspawnd0 ${mark} -j ACCEPT`,
      },
      {
        id: "net.filter.rule[replies]",
        undo: `iptables -w -D NSPAWN ${mine} ! -o nspawnd0 ${notLab("dst")} -m conntrack --ctstate RELATED,ESTABLISHED ${mark} -j ACCEPT`,
      },
      {
        id: "net.filter.rule[out]",
        undo: `iptables -w -D NSPAWN ${mine} ! -o nspawnd0 ${notLab("dst")} ${mark} -j NSPAWN-OUT`,
      },
      {
        id: "net.filter.rule[to:192.168.88.0/24]",
        undo: `iptables -w -D NSPAWN ${mine} ! -o nspawnd0 ${notLab("dst")} -d 192.168.88.0/24 ${mark} -j ACCEPT`,
      },
      {
        id: "net.out.rule[not:10.0.0.0/8]",
        undo: `iptables -w -D NSPAWN-OUT -d 10.0.0.0/8 ${mark} -j RETURN`,
      },
      { id: "net.out.rule[world]", undo: `iptables -w -D NSPAWN-OUT ${mark} -j ACCEPT` },
      {
        id: "net.filter.rule[spoofed]",
        undo: `iptables -w -D NSPAWN -i nspawnd0 ! -s 10.10.12.0/26 ${mark} -j DROP`,
      },
      {
        id: "net.filter.rule[refuse-out]",
        undo: `iptables -w -D NSPAWN ${mine} ${notLab("dst")} ${mark} -j REJECT`,
      },
      {
        id: "net.filter.rule[refuse-lab]",
        undo: `iptables -w -D NSPAWN ${mine} -m devgroup --dst-group 0x41504c53 ${mark} -j DROP`,
      },
      { id: "net.filter.rule[refuse-in]", undo: `iptables -w -D NSPAWN -o nspawnd0 ${mark} -j DROP` },
      {
        id: "net.filter.rule[from:192.168.77.0/24]",
        undo: `iptables -w -D NSPAWN -s 192.168.77.0/24 ! -i nspawnd0 -o nspawnd0 ${notLab("src")} ${mark} -j ACCEPT`,
      },
      {
        id: "net.filter.rule[forward:tcp/2222]",
        undo: `iptables -w -D NSPAWN ! -i nspawnd0 -o nspawnd0 ${notLab("src")} -d 10.10.12.10 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT ${mark} -j ACCEPT`,
      },
      {
        id: "net.input.rule[replies]",
        undo: `iptables -w -D NSPAWN-IN -s 10.10.12.0/26 -m conntrack --ctstate RELATED,ESTABLISHED ${mark} -j ACCEPT`,
      },
      {
        id: "net.input.rule[port:tcp/3142]",
        undo: `iptables -w -D NSPAWN-IN -s 10.10.12.0/26 -p tcp -m tcp --dport 3142 ${mark} -j ACCEPT`,
      },
      {
        id: "net.input.rule[spoofed]",
        undo: `iptables -w -D NSPAWN-IN ! -s 10.10.12.0/26 ${mark} -j DROP`,
      },
      { id: "net.input.rule[refuse]", undo: `iptables -w -D NSPAWN-IN -s 10.10.12.0/26 ${mark} -j REJECT` },
      { id: "net.input.jump", undo: `iptables -w -D INPUT -i nspawnd0 ${mark} -j NSPAWN-IN` },
      {
        id: "net.dnat.rule[tcp/2222]",
        undo: `iptables -w -t nat -D NSPAWN-DNAT -p tcp -m tcp --dport 2222 ${mark} -j DNAT --to-destination 10.10.12.10:22`,
      },
      {
        id: "net.dnat.jump",
        undo: `iptables -w -t nat -D PREROUTING ! -i nspawnd0 -m addrtype --dst-type LOCAL ${mark} -j NSPAWN-DNAT`,
      },
    ];
    for (const d of drifts) {
      const [cmd = "", ...args] = d.undo.split(" ");
      const del = await ns.run(cmd, args);
      assert.equal(del.exitCode, 0, del.stderr);
      const failing = (await probes(lab)).filter((p) => !p.ok);
      assert.equal(failing.length, 1, `one probe sees the drift of ${d.id}: ${JSON.stringify(failing)}`);
      const up = ok(await lab.cli(["--json", "run", "netup"]));
      assert.deepEqual(taskIds(up, "changed"), [d.id]);
      assert.equal(summary(up).changed, 1);
      // A re-added rule may land elsewhere in its chain; the set of rules is what matters.
      const now = await rules(ns);
      assert.equal(sorted(now), sorted(full));
      partsInOrder(now);
      assert.equal(settled(await ns.snapshot()).addrs, fullAddrs);
    }
    // The journal now holds two entries for each re-added rule; netdown copes (the second finds
    // nothing to delete) and still leaves nothing.
    ok(await lab.cli(["run", "netdown"]));
    await assertNoResidue(lab, "after netdown");
  },
);

netTest(
  "netdown refuses while a container's veth is attached to the bridge, and changes nothing",
  {},
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]));
    // What systemd-nspawn --network-bridge makes: a veth pair, host side vb-<machine> on the bridge.
    for (const args of [
      ["link", "add", "vb-aplspawn10", "type", "veth", "peer", "name", "host0-test"],
      ["link", "set", "vb-aplspawn10", "master", "nspawnd0"],
    ])
      assert.equal((await ns.run("ip", args)).exitCode, 0);
    const up = settled(await ns.snapshot());
    const r = await lab.cli(["run", "netdown"]);
    assert.equal(r.exitCode, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /task net\.guard failed: containers are still attached to bridge nspawnd0 \(vb-aplspawn10\)/,
    );
    assert.match(r.stderr, /aplspawn run stop/);
    sameSnapshot(settled(await ns.snapshot()), up, "after the refused netdown");

    assert.equal((await ns.run("ip", ["link", "del", "vb-aplspawn10"])).exitCode, 0);
    ok(await lab.cli(["run", "netdown"]));
    await assertNoResidue(lab, "after netdown");
  },
);
