// Real netup/netdown in a private namespace: everything is set up, a second netup changes nothing,
// netdown leaves the namespace as it was, and status probes see what is there.

import assert from "node:assert/strict";
import { summary, taskEvents, taskIds } from "../support/json-events.js";
import { assertNoResidue, ok } from "../support/lab.js";
import { netTest, probes, rules } from "../support/net-lab.js";

const EXPECTED_RULES = `*filter
:INPUT ACCEPT
:FORWARD ACCEPT
:OUTPUT ACCEPT
:NSPAWN -
:NSPAWN-IN -
:NSPAWN-OUT -
-A INPUT -i nspawnd0 -m comment --comment "aplspawn:nettest" -j NSPAWN-IN
-A FORWARD -o nspawnd0 -m comment --comment "aplspawn:nettest" -j NSPAWN
-A FORWARD -i nspawnd0 -m comment --comment "aplspawn:nettest" -j NSPAWN
-A NSPAWN -s 10.10.12.0/26 -i nspawnd0 ! -o nspawnd0 -m devgroup ! --dst-group 0x41504c53 -m comment --comment "aplspawn:nettest" -j NSPAWN-OUT
-A NSPAWN -s 10.10.12.0/26 -i nspawnd0 ! -o nspawnd0 -m devgroup ! --dst-group 0x41504c53 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "aplspawn:nettest" -j ACCEPT
-A NSPAWN ! -i nspawnd0 -o nspawnd0 -m devgroup ! --src-group 0x41504c53 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "aplspawn:nettest" -j ACCEPT
-A NSPAWN -s 10.10.12.0/26 -i nspawnd0 -o nspawnd0 -m comment --comment "aplspawn:nettest" -j ACCEPT
-A NSPAWN ! -s 10.10.12.0/26 -i nspawnd0 -m comment --comment "aplspawn:nettest" -j DROP
-A NSPAWN -s 10.10.12.0/26 -i nspawnd0 -m devgroup ! --dst-group 0x41504c53 -m comment --comment "aplspawn:nettest" -j REJECT --reject-with icmp-port-unreachable
-A NSPAWN -s 10.10.12.0/26 -i nspawnd0 -m devgroup --dst-group 0x41504c53 -m comment --comment "aplspawn:nettest" -j DROP
-A NSPAWN -o nspawnd0 -m comment --comment "aplspawn:nettest" -j DROP
-A NSPAWN-IN -s 10.10.12.0/26 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "aplspawn:nettest" -j ACCEPT
-A NSPAWN-IN ! -s 10.10.12.0/26 -m comment --comment "aplspawn:nettest" -j DROP
-A NSPAWN-IN -s 10.10.12.0/26 -m comment --comment "aplspawn:nettest" -j REJECT --reject-with icmp-port-unreachable
-A NSPAWN-OUT -d 224.0.0.0/3 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 198.18.0.0/15 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 192.0.0.0/24 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 169.254.0.0/16 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 100.64.0.0/10 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 192.168.0.0/16 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 172.16.0.0/12 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -d 10.0.0.0/8 -m comment --comment "aplspawn:nettest" -j RETURN
-A NSPAWN-OUT -m comment --comment "aplspawn:nettest" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT
:INPUT ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:NSPAWN -
-A POSTROUTING -s 10.10.12.0/26 -m comment --comment "aplspawn:nettest" -j NSPAWN
-A NSPAWN -s 10.10.12.0/26 ! -d 10.10.12.0/26 ! -o nspawnd0 -m comment --comment "aplspawn:nettest" -j MASQUERADE
COMMIT`;

netTest(
  "netup sets up bridge, forwarding and every rule; again changes nothing; netdown restores all",
  {},
  async (lab) => {
    const { ns, before } = lab;
    assert.equal(before.ipForward, "0");
    const down = await probes(lab);
    assert.ok(
      down.every((p) => !p.ok),
      `before netup every probe fails: ${JSON.stringify(down.filter((p) => p.ok))}`,
    );
    // Status runs netup's own checks, and each says why it fails.
    assert.deepEqual(
      down.slice(0, 6).map((p) => p.detail),
      [
        "no bridge nspawnd0",
        "nspawnd0 does not have 10.10.12.1/26",
        "no link nspawnd0",
        "no link nspawnd0",
        "no link nspawnd0",
        "net.ipv4.ip_forward is 0",
      ],
    );
    assert.ok(
      down.every((p) => (p.detail ?? "").length > 0),
      `every failing check says why: ${JSON.stringify(down.filter((p) => !p.detail))}`,
    );

    const up = ok(await lab.cli(["--json", "run", "netup"]));
    // 36 tasks; the 21 rules of the lab's own chains are made with their chain (one
    // iptables-restore each), so their own tasks find them there.
    assert.equal(summary(up).changed, 15);
    assert.equal(summary(up).unchanged, 21);
    const link = JSON.parse((await ns.run("ip", ["-j", "-d", "link", "show", "dev", "nspawnd0"])).stdout)[0];
    assert.equal(link.linkinfo.info_kind, "bridge");
    assert.ok(link.flags.includes("UP"), `bridge is up: ${link.flags}`);
    const addr = (await ns.run("ip", ["-o", "-4", "addr", "show", "dev", "nspawnd0"])).stdout;
    assert.match(addr, /inet 10\.10\.12\.1\/26 brd 10\.10\.12\.63 /);
    assert.equal((await ns.snapshot()).ipForward, "1");
    assert.equal(await rules(ns), EXPECTED_RULES);
    const upProbes = await probes(lab);
    assert.equal(upProbes.length, 35);
    assert.deepEqual(
      upProbes.filter((p) => !p.ok),
      [],
    );
    assert.deepEqual(
      // The original tool's four, in its order (the bridge's IPv6 and group checks come among them).
      upProbes
        .map((p) => p.name)
        .filter((n) => !n.includes("IPv6") && !n.includes("interface group"))
        .slice(0, 4),
      [
        "Checking if bridge nspawnd0 exists",
        "Checking if bridge has IP 10.10.12.1/26 assigned",
        "Checking if bridge nspawnd0 is up",
        "Checking if traffic forwarding is enabled /proc/sys/net/ipv4/ip_forward",
      ],
    );
    assert.ok(upProbes.every((p) => p.target.length > 0));

    const again = ok(await lab.cli(["--json", "run", "netup"]));
    assert.equal(summary(again).changed, 0);
    assert.equal(summary(again).unchanged, 36);
    assert.equal(await rules(ns), EXPECTED_RULES);
    // Nothing would change: --detailed-exitcode exits 0.
    ok(await lab.cli(["run", "netup", "--dry-run", "--detailed-exitcode"]), "no drift");

    const nd = ok(await lab.cli(["--json", "run", "netdown"]));
    assert.equal(taskIds(nd, "rolled-back").length, 15);
    await assertNoResidue(lab, "after netdown");
    const nd2 = ok(await lab.cli(["--json", "run", "netdown"]));
    assert.equal(summary(nd2).changed, 0);
    assert.equal(taskIds(nd2, "rolled-back").length, 0);
    await assertNoResidue(lab, "after a second netdown");
  },
);

netTest("the plain output reads like the original tool's", {}, async (lab) => {
  const up = ok(await lab.cli(["run", "netup"]));
  for (const line of [
    "‣ [ INFO ] Configuring bridge nspawnd0",
    "‣ [ OK ] Enabling traffic forwarding system-wide",
    "‣ [ INFO ] Configuring iptables forwarding rules for chain NSPAWN",
    "‣ [ INFO ] Configuring iptable NAT rules for chain NSPAWN",
  ])
    assert.ok(up.stdout.includes(`${line}\n`), `missing "${line}" in:\n${up.stdout}`);
  // The namespace's FORWARD policy is ACCEPT and aplspawn turned forwarding on: it says what that means.
  assert.match(up.stdout, /ip_forward was off and FORWARD's policy is ACCEPT: the host now also routes/);
  const down = ok(await lab.cli(["run", "netdown"]));
  assert.match(down.stdout, /‣ \[ UNDONE \] Deleting bridge nspawnd0\n/);
  assert.match(down.stdout, /‣ \[ UNDONE \] Restoring traffic forwarding to its previous setting\n/);
  await assertNoResidue(lab, "after netdown");
});

netTest("--dry-run netup changes nothing and prints the commands it would run", {}, async (lab) => {
  const r = ok(await lab.cli(["--json", "run", "netup", "--dry-run"]));
  assert.equal(summary(r).wouldChange, 36);
  assert.equal(summary(r).changed, 0);
  const commands = taskEvents(r).flatMap((e) => e.commands ?? []);
  for (const c of [
    "ip link add name nspawnd0 type bridge",
    "ip addr add 10.10.12.1/26 brd + dev nspawnd0",
    "sysctl -q -w net.ipv4.ip_forward=1",
    "iptables -w -t filter -N NSPAWN",
    "iptables -w -t filter -I FORWARD -i nspawnd0 -m comment --comment aplspawn:nettest -j NSPAWN",
    "iptables -w -t nat -N NSPAWN",
    "iptables -w -t nat -A NSPAWN -s 10.10.12.0/26 '!' -d 10.10.12.0/26 '!' -o nspawnd0 -m comment --comment aplspawn:nettest -j MASQUERADE",
  ])
    assert.ok(commands.includes(c), `missing "${c}" in:\n${commands.join("\n")}`);
  assert.ok(taskEvents(r).some((e) => e.state === "would-change"));
  const plain = ok(await lab.cli(["run", "netup", "--dry-run"]));
  assert.match(plain.stdout, /^ {6}iptables -w -t nat -A POSTROUTING -s 10\.10\.12\.0\/26 /m);
  // For CI drift checks: exit 3 when something would change.
  const drift = await lab.cli(["run", "netup", "--dry-run", "--detailed-exitcode"]);
  assert.equal(drift.exitCode, 3, drift.stderr);
  assert.equal(drift.stderr, "");
  await assertNoResidue(lab, "after a dry run");
  assert.equal(
    (await lab.ns.run("ls", [`${lab.dir}/work`])).exitCode,
    2,
    "a dry run creates no lab directory",
  );
});

netTest("network.nat: false sets up no NAT chain", { nat: false }, async (lab) => {
  const list = ok(await lab.cli(["run", "netup", "--list-tasks"]))
    .stdout.trim()
    .split("\n");
  assert.ok(!list.some((id) => id.startsWith("net.nat")), list.join(" "));
  assert.equal(summary(ok(await lab.cli(["--json", "run", "netup"]))).changed, 13);
  assert.ok(!(await rules(lab.ns)).includes("MASQUERADE"));
  assert.equal((await probes(lab)).length, 32);
  ok(await lab.cli(["run", "netdown"]));
  await assertNoResidue(lab, "after netdown");
});
