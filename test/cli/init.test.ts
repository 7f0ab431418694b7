// What a new user meets first: `aplspawn init` and the containers.ipRange that follows
// network.address (the picking of free names and subnets, and a real init beside a lab in a private
// namespace), ssh's target, and the table at the end of up.
import assert from "node:assert/strict";
import { chmod, mkdir, readFile, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { sshTarget } from "../../cli/commands/ssh.js";
import { labRows, renderLabTable } from "../../cli/lab-table.js";
import { defaultIpRange } from "../../config/ip.js";
import { parseConfig } from "../../config/load.js";
import { realHost } from "../../src/host/real-host.js";
import { pickStarter, recordedNames, type Taken } from "../../src/lab/starter.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { assertNoResidue, labTest, netLabTest, ok } from "../support/lab.js";
import { lanBridge } from "../support/net-peers.js";
import { CLI, skip, TestNamespace, tempDir, withTempDir } from "../support/ns.js";

const none: Taken = { labs: [], links: [], chains: [], subnets: [], routes: [], names: [] };

test("containers.ipRange follows network.address when not given; a given one is kept", () => {
  assert.deepEqual(defaultIpRange("10.10.12.1/26", 3), ["10.10.12.10", "10.10.12.60"]);
  assert.deepEqual(defaultIpRange("192.168.77.1/24", 3), ["192.168.77.10", "192.168.77.60"]);
  // As many as count needs, within the subnet.
  assert.deepEqual(defaultIpRange("192.168.77.1/24", 100), ["192.168.77.10", "192.168.77.109"]);
  assert.deepEqual(defaultIpRange("10.0.0.1/28", 3), ["10.0.0.10", "10.0.0.14"]);
  assert.deepEqual(defaultIpRange("10.0.0.1/28", 9), ["10.0.0.2", "10.0.0.14"]);
  assert.deepEqual(defaultIpRange("10.0.0.1/29", 3), ["10.0.0.2", "10.0.0.6"]);
  // Never across the bridge's own address: before it when the lab fits, else after.
  assert.deepEqual(defaultIpRange("10.0.0.30/24", 3), ["10.0.0.10", "10.0.0.29"]);
  assert.deepEqual(defaultIpRange("10.0.0.12/24", 3), ["10.0.0.13", "10.0.0.63"]);
  const c = parseConfig("network: {address: 192.168.77.1/24}\n", "t.yaml");
  assert.deepEqual(c.containers.ipRange, ["192.168.77.10", "192.168.77.60"]);
  const given = parseConfig(
    "network: {address: 192.168.77.1/24}\ncontainers: {ipRange: [192.168.77.100, 192.168.77.120]}\n",
    "t.yaml",
  );
  assert.deepEqual(given.containers.ipRange, ["192.168.77.100", "192.168.77.120"]);
  // Too many for the subnet: the error says the range was derived and what to do.
  assert.throws(
    () => parseConfig("network: {address: 10.0.0.1/28}\ncontainers: {count: 14}\n", "t.yaml"),
    /14 containers do not fit in ipRange 10\.0\.0\.2–10\.0\.0\.14 .*what 10\.0\.0\.1\/28 leaves; give a larger subnet or containers\.ipRange/,
  );
});

test("init picks the first free lab name, bridge, chain, subnet and prefix", () => {
  assert.deepEqual(pickStarter(none), {
    lab: "default",
    bridge: "nspawnd0",
    chain: "NSPAWN",
    address: "10.10.12.1/26",
    prefix: "aplspawn",
  });
  const taken: Taken = {
    labs: ["default", "lab2"],
    links: ["lo", "nspawnd0"],
    chains: ["NSPAWN1"],
    subnets: ["10.10.12.1/26"],
    // 10.10.12.0/23 routed through the LAN: neither 10.10.12.x nor 10.10.13.x is free.
    routes: [{ first: 0x0a0a0c00, last: 0x0a0a0dff, label: "10.10.12.0/23 dev lan0" }],
    names: ["lab3-10"],
  };
  assert.deepEqual(pickStarter(taken), {
    lab: "lab3",
    bridge: "nspawnd2",
    chain: "NSPAWN2",
    address: "10.10.14.1/26",
    prefix: "lab3-2-",
  });
  assert.equal(pickStarter(taken, "Web.1").prefix, "web-1-");
  assert.throws(() => pickStarter(taken, "lab2"), /a lab named lab2 exists/);
  assert.throws(() => pickStarter(taken, "../x"), /--lab/);
});

netLabTest(
  "init beside a lab: the config it writes takes nothing the lab or the host's routes have, and comes up beside it",
  { name: "ini", subnet: 12, lab: "default", network: { bridge: "nspawnd0", chain: "NSPAWN" } },
  async (lab) => {
    const { ns } = lab;
    ok(await lab.cli(["run", "netup"]), "netup of the first lab");
    await lanBridge(ns, "10.10.13.7/23");
    const file = join(lab.dir, "second.yaml");
    const r = ok(await ns.cli(["-c", file, "--json", "init"], { cwd: lab.dir }), "init");
    const s = JSON.parse(r.stdout) as { lab: string; bridge: string; chain: string; address: string };
    // The first lab is "default" on nspawnd0, NSPAWN, 10.10.12.1/26; the LAN: 10.10.12.0/23.
    assert.notEqual(s.lab, "default");
    assert.equal(s.bridge, "nspawnd1");
    assert.equal(s.chain, "NSPAWN1");
    assert.equal(s.address, "10.10.14.1/26");
    const text = await readFile(file, "utf8");
    assert.match(text, /^lab: /m);
    const again = await ns.cli(["-c", file, "init"], { cwd: lab.dir });
    assert.equal(again.exitCode, 2, "init over an existing file without --force");
    // It comes up beside the first lab (a workdir of the test's own).
    const second = await lab.file("second-work.yaml", `${text}workdir: ${join(lab.dir, "work")}\n`);
    ok(await ns.cli(["-c", second, "run", "netup"], { cwd: lab.dir }), "netup of the init'd lab");
    ok(await ns.cli(["-c", second, "run", "netdown"], { cwd: lab.dir }), "netdown of the init'd lab");
    ok(await lab.cli(["run", "netdown"]), "netdown of the first lab");
    assert.equal((await ns.run("ip", ["link", "del", "lan0"])).exitCode, 0);
    await assertNoResidue(lab, "both labs down");
  },
);

test("a lab's journal records its names for init: bridges, chains, subnets, containers' addresses and names", () =>
  withTempDir(async (d) => {
    const dir = join(d.path, "lab2");
    await mkdir(dir);
    const j = await Journal.open(realHost(), journalPath(dir), "lab2");
    const entry = (kind: string, params: object, scope?: string) =>
      j.begin({
        id: `${kind}${scope ? `[${scope}]` : ""}`,
        kind,
        runId: "r1",
        params,
        ...(scope ? { scope } : {}),
      });
    await entry("net.claim", {
      lab: "lab2",
      labDir: dir,
      bridge: "nspawnd1",
      chains: ["NSPAWN1", "NSPAWN1-IN"],
      subnet: "10.10.12.65/26",
    });
    await entry("net.iptables.chain", { table: "nat", chain: "NSPAWN1" });
    await entry("net.bridge.address", { bridge: "nspawnd1", address: "10.10.12.65/26" });
    // What a lab that is down keeps: its containers' host keys, with their addresses.
    await entry(
      "container.hostkeys",
      { name: "lab2-74", ip: "10.10.12.74", dir, merged: "/m", knownHosts: "/k" },
      "lab2-74",
    );
    // Nonsense is not taken for a name.
    await entry("x.odd", { ip: "not-an-ip", subnet: "10.0.0.0/99", chains: [1] });
    const r = await recordedNames(realHost(), dir, "lab2");
    assert.deepEqual(new Set(r.links), new Set(["nspawnd1"]));
    assert.deepEqual(new Set(r.chains), new Set(["NSPAWN1", "NSPAWN1-IN"]));
    assert.deepEqual(new Set(r.subnets), new Set(["10.10.12.65/26", "10.10.12.74/32"]));
    assert.deepEqual(r.names, ["lab2-74"]);
    // A directory without a journal, or one of another lab's: nothing.
    assert.deepEqual(await recordedNames(realHost(), d.path, "x"), {
      links: [],
      chains: [],
      subnets: [],
      names: [],
    });
    assert.deepEqual((await recordedNames(realHost(), dir, "other")).links, []);
  }));

labTest(
  "init beside labs that are down: what the default lab has and what a lab's journal records are taken",
  {
    name: "inidown",
    subnet: 84,
    lab: "lab2",
    network: { bridge: "nspawnd0", chain: "NSPAWN", address: "10.10.12.65/26" },
    containers: { count: 1, prefix: "lab2-", ipRange: ["10.10.12.74", "10.10.12.80"] },
  },
  async (lab) => {
    const { ns } = lab;
    // lab2 on the default's bridge name and the second /26, brought up and down: it keeps its
    // containers' layers and host keys, and its journal their addresses.
    ok(await lab.cli(["run", "up"]), "up of lab2");
    ok(await lab.cli(["run", "down"]), "down of lab2");
    // The workdir init reads, /var/lib/aplspawn, is the lab's (in the test's mount namespace
    // only), beside a default lab that is down and recorded nothing.
    const varLib = join(lab.dir, "var-lib");
    await mkdir(varLib);
    await symlink(lab.workdir, join(varLib, "aplspawn"));
    await mkdir(join(lab.workdir, "default"));
    ok(await ns.run("mount", ["--bind", varLib, "/var/lib"]), "bind /var/lib");
    try {
      const file = join(lab.dir, "third.yaml");
      const r = ok(await ns.cli(["-c", file, "--json", "init"], { cwd: lab.dir }), "init");
      const s = JSON.parse(r.stdout) as { lab: string; bridge: string; chain: string; address: string };
      assert.deepEqual(
        { lab: s.lab, bridge: s.bridge, chain: s.chain, address: s.address },
        // default: nspawnd0, NSPAWN, 10.10.12.1/26 (the packaged config's); lab2: 10.10.12.74 on.
        { lab: "lab3", bridge: "nspawnd1", chain: "NSPAWN1", address: "10.10.12.129/26" },
      );
    } finally {
      ok(await ns.run("umount", ["/var/lib"]), "umount /var/lib");
    }
    await assertNoResidue(lab, "after down and init");
  },
);

test("init where it cannot write: exit 2 saying so, not an internal error", {
  skip,
}, async () => {
  const nobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"];
  // The CLI as that user can run it: the checkout may sit where only root reaches (/root is 0700).
  const ns = await TestNamespace.create();
  const user = await ns.userCli(65534);
  const d = await tempDir();
  try {
    // A directory the user may read, not write.
    await chmod(d.path, 0o755);
    const file = join(d.path, "aplspawn.yaml");
    const r = await ns.run("setpriv", [...nobody, process.execPath, user.cli, "-c", file, "init"], {
      cwd: d.path,
    });
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `aplspawn: cannot write ${file}: permission denied in ${d.path}; give -c FILE in a directory you can write`,
      ),
    );
    assert.doesNotMatch(r.stderr, /internal error/);
    await assert.rejects(stat(file));
    const missingDir = await execa(process.execPath, [CLI, "-c", join(d.path, "no", "x.yaml"), "init"], {
      reject: false,
    });
    assert.equal(missingDir.exitCode, 2, missingDir.stderr);
    assert.match(missingDir.stderr, /the directory .*\/no does not exist/);
  } finally {
    await d.cleanup();
    await user.release();
    await ns.destroy();
  }
});

test("ssh's target: NAME or USER@NAME; left out, or taken for the command, in a lab of one", () => {
  const three = parseConfig("containers: {count: 3}\n", "t.yaml");
  assert.deepEqual(sshTarget(three, "aplspawn11", ["id"]), {
    name: "aplspawn11",
    user: undefined,
    command: ["id"],
  });
  assert.deepEqual(sshTarget(three, "root@aplspawn12", []), {
    name: "aplspawn12",
    user: "root",
    command: [],
  });
  assert.throws(() => sshTarget(three, undefined, []), /3 containers: name one \(aplspawn10, aplspawn11/);
  assert.throws(() => sshTarget(three, "uname", ["-a"]), /no container named uname/);
  assert.throws(() => sshTarget(three, "-oProxyCommand=x@aplspawn10", []), /is not a user name/);
  const one = parseConfig("containers: {count: 1}\n", "t.yaml");
  assert.deepEqual(sshTarget(one, undefined, []), { name: "aplspawn10", user: undefined, command: [] });
  assert.deepEqual(sshTarget(one, "uname", ["-a"]), {
    name: "aplspawn10",
    user: undefined,
    command: ["uname", "-a"],
  });
  assert.deepEqual(sshTarget(one, "test@aplspawn10", ["id"]), {
    name: "aplspawn10",
    user: "test",
    command: ["id"],
  });
});

test("the end of up: a table of the lab and the next commands, -c repeated", () => {
  const c = parseConfig("containers: {count: 2}\n", "t.yaml");
  const rows = labRows(c, [
    { name: "aplspawn10", ip: "10.10.12.10", leaderPid: 5 },
    { name: "aplspawn11", ip: "10.10.12.11" },
    // Journaled but no longer in the config: not a row.
    { name: "old", ip: undefined },
  ]);
  assert.deepEqual(
    rows.map((r) => `${r.name} ${r.state}`),
    ["aplspawn10 running", "aplspawn11 stopped"],
  );
  const t = renderLabTable(c, rows, "lab.yaml");
  assert.match(t, /^Lab default: 2 containers on nspawnd0 \(10\.10\.12\.1\/26\)$/m);
  assert.match(t, /^ {2}NAME {8}ADDRESS {6}GROUPS {6}STATE$/m);
  assert.match(t, /^ {2}aplspawn10 {2}10\.10\.12\.10 {2}aplspawned {2}running$/m);
  assert.match(t, /^ {2}ansible -i inventory\.txt -m ping aplspawned$/m);
  assert.match(t, /^ {2}aplspawn -c lab\.yaml ssh aplspawn10$/m);
  assert.match(t, /^ {2}sudo aplspawn -c lab\.yaml run down$/m);
});
