// A lab across hosts split into shares (config/cluster.ts): even spread, sets whole and pinned,
// addresses and bridges, the VNI, each share an ordinary config; and `validate` reading the
// inventory with the real ansible-inventory.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import {
  type ClusterHost,
  clusterMtu,
  copiedImages,
  hostImagePath,
  remoteAddresses,
  splitLab,
  vniOf,
} from "../../config/cluster.js";
import { containerSpecs } from "../../config/containers.js";
import { parseConfig } from "../../config/load.js";
import { hostsOfList, proxyCommand } from "../../src/cluster/hosts.js";
import { renderInventory } from "../../src/lab/inventory.js";
import { requires } from "../support/ns.js";

const HOSTS: ClusterHost[] = [
  { name: "h1", address: "192.0.2.11", groups: ["aplspawn_hosts", "big"] },
  { name: "h2", address: "192.0.2.12", groups: ["aplspawn_hosts"] },
  { name: "h3", address: "192.0.2.13", groups: ["aplspawn_hosts", "big"] },
];

const base = (more = "") =>
  `lab: c1\nworkdir: /tmp/w\ncluster: {inventory: hosts.ini}\nnetwork: {address: 10.10.12.1/26}\n${more}`;

test("without sets: containers.count spread evenly, names and addresses as one host makes them", () => {
  const c = parseConfig(base("containers: {count: 7, machinesDir: /tmp/m}\n"), "t.yaml");
  const { plan, problems } = splitLab(c, HOSTS);
  assert.deepEqual(problems, []);
  assert.ok(plan);
  assert.deepEqual(
    plan.shares.map((s) => [s.host, s.containers.length]),
    [
      ["h1", 3],
      ["h2", 2],
      ["h3", 2],
    ],
  );
  const all = plan.shares.flatMap((s) => s.containers.map((k) => [k.name, k.ip]));
  assert.deepEqual(
    all,
    containerSpecs(c).map((s) => [s.name, s.ip]),
  );
  // The first host's bridge keeps the lab's address; the others take the subnet's last ones.
  assert.deepEqual(
    plan.shares.map((s) => s.bridgeAddress),
    ["10.10.12.1/26", "10.10.12.62/26", "10.10.12.61/26"],
  );
});

test("each share is an ordinary config: it parses, has no cluster, and makes exactly that host's containers", () => {
  const c = parseConfig(
    base(
      "containers: {count: 5, machinesDir: /tmp/m}\nnetwork: {address: 10.10.12.1/26, forwards: [{hostPort: 8080, container: aplspawn14, port: 80}]}\n",
    ).replace("network: {address: 10.10.12.1/26}\n", ""),
    "t.yaml",
  );
  const { plan } = splitLab(c, HOSTS);
  assert.ok(plan);
  for (const s of plan.shares) {
    const share = parseConfig(stringify(s.config), `${s.host}.yaml`);
    assert.equal(share.cluster, undefined);
    assert.equal(share.network.address, s.bridgeAddress);
    assert.deepEqual(
      containerSpecs(share).map((k) => [k.name, k.ip]),
      s.containers.map((k) => [k.name, k.ip]),
    );
    assert.deepEqual(
      share.network.forwards.map((f) => f.container),
      s.containers.some((k) => k.name === "aplspawn14") ? ["aplspawn14"] : [],
    );
    assert.equal(share.containers.sshKey, "/tmp/w/.cluster/c1/id_ed25519");
    assert.equal(share.inventory.ping, false);
  }
});

test("sets: each set whole on the least loaded host of its group; a pinned set on its group's hosts", () => {
  const c = parseConfig(
    base(`containers:
  machinesDir: /tmp/m
  sets:
    - {name: web, count: 3}
    - {name: db, count: 2, hosts: big}
    - {name: lb, count: 1}
    - {name: cache, count: 2, hosts: big}
`),
    "t.yaml",
  );
  const { plan, problems } = splitLab(c, HOSTS);
  assert.deepEqual(problems, []);
  assert.ok(plan);
  assert.deepEqual(
    plan.shares.map((s) => [s.host, s.containers.map((k) => k.name).join(",")]),
    [
      ["h1", "web1,web2,web3"],
      ["h2", "lb1"],
      ["h3", "db1,db2,cache1,cache2"],
    ],
  );
  for (const s of plan.shares) {
    const share = parseConfig(stringify(s.config), `${s.host}.yaml`);
    assert.deepEqual(
      containerSpecs(share).map((k) => [k.name, k.ip]),
      s.containers.map((k) => [k.name, k.ip]),
    );
  }
  // No address twice, across the hosts and their bridges.
  const ips = plan.shares.flatMap((s) => [s.bridgeAddress.split("/")[0], ...s.containers.map((k) => k.ip)]);
  assert.equal(new Set(ips).size, ips.length);
});

test("what does not fit is named at its key: no hosts in the group or the pinned group, a bad address; a range that fits exactly passes", () => {
  const none = parseConfig(
    base("cluster: {inventory: h.ini, group: nosuch}\n").replace(/^cluster.*\n/m, ""),
    "t",
  );
  assert.match(
    splitLab(none, HOSTS)
      .problems.map((p) => p.message)
      .join("\n"),
    /no host in group nosuch/,
  );
  const small = parseConfig(
    base("containers: {count: 3, ipRange: [10.10.12.10, 10.10.12.12], machinesDir: /tmp/m}\n"),
    "t",
  );
  assert.deepEqual(splitLab(small, HOSTS).problems, []);
  const pinned = parseConfig(base("containers: {sets: [{name: a, hosts: nogroup}]}\n"), "t");
  assert.deepEqual(splitLab(pinned, HOSTS).problems[0]?.at, ["containers", "sets", 0, "hosts"]);
  const bad = splitLab(parseConfig(base(), "t"), [
    { name: "x", address: "x.example", groups: ["aplspawn_hosts"] },
  ]);
  assert.match(bad.problems[0]?.message ?? "", /not an IPv4 address/);
  assert.throws(
    () => parseConfig("containers: {sets: [{name: a, hosts: big}]}\n", "t"),
    /needs a cluster section/,
  );
});

test("the VNI follows the lab's name: the same on every control node, 1 to 2^24-2, a VXLAN name of 11 characters", () => {
  assert.equal(vniOf("c1"), vniOf("c1"));
  assert.notEqual(vniOf("c1"), vniOf("c2"));
  for (const lab of ["a", "default", "x".repeat(32)]) assert.ok(vniOf(lab) >= 1 && vniOf(lab) <= 0xfffffe);
  const { plan } = splitLab(parseConfig(base(), "t"), HOSTS);
  assert.equal(plan?.vxlan.length, 11);
  assert.equal(plan?.port, 4789);
});

test("overlay routes: the same split, no VXLAN's overhead (MTU 1500 unless network.mtu says), a chain of the lab's own, and each host routes every lab address the others hold", () => {
  const routes = parseConfig(
    base("containers: {count: 5, machinesDir: /tmp/m}\n").replace(
      "{inventory: hosts.ini}",
      "{inventory: h.ini, overlay: routes}",
    ),
    "t",
  );
  const vxlan = parseConfig(base("containers: {count: 5, machinesDir: /tmp/m}\n"), "t");
  const r = splitLab(routes, HOSTS);
  const v = splitLab(vxlan, HOSTS);
  assert.deepEqual(r.problems, []);
  assert.ok(r.plan && v.plan);
  assert.equal(r.plan.overlay, "routes");
  assert.equal(v.plan.overlay, "vxlan");
  // The shares themselves do not depend on the overlay but for the MTU.
  assert.deepEqual(
    r.plan.shares.map((s) => [s.host, s.bridgeAddress, s.containers]),
    v.plan.shares.map((s) => [s.host, s.bridgeAddress, s.containers]),
  );
  assert.equal(clusterMtu(routes), 1500);
  assert.equal(clusterMtu(vxlan), 1450);
  assert.equal(clusterMtu({ ...routes, network: { ...routes.network, mtu: 9000 } }), 9000);
  assert.deepEqual(
    r.plan.shares.map((s) => (s.config.network as { mtu: number }).mtu),
    [1500, 1500, 1500],
  );
  assert.deepEqual(
    v.plan.shares.map((s) => (s.config.network as { mtu: number }).mtu),
    [1450, 1450, 1450],
  );
  // The VXLAN's filter keeps its name (a lab up before routes existed goes down); routes' is its own.
  const hex = vniOf("c1").toString(16).padStart(6, "0");
  assert.equal(v.plan.chain, v.plan.vxlan.toUpperCase());
  assert.equal(r.plan.chain, `APLRT${hex.toUpperCase()}`);
  assert.ok(r.plan.chain.length <= 28);
  const remote = remoteAddresses(r.plan);
  assert.deepEqual(remote.h2, [
    { addr: "10.10.12.10", via: "192.0.2.11", host: "h1" },
    { addr: "10.10.12.11", via: "192.0.2.11", host: "h1" },
    { addr: "10.10.12.1", via: "192.0.2.11", host: "h1" },
    { addr: "10.10.12.14", via: "192.0.2.13", host: "h3" },
    { addr: "10.10.12.61", via: "192.0.2.13", host: "h3" },
  ]);
  // Every host routes exactly what the others hold: never one of its own addresses.
  for (const s of r.plan.shares) {
    const addrs = (o: (typeof r.plan.shares)[number]): string[] => [
      ...o.containers.map((k) => k.ip),
      o.bridgeAddress.split("/")[0]!,
    ];
    const own = addrs(s);
    assert.deepEqual(
      remote[s.host]!.map((x) => x.addr).sort(),
      r.plan.shares
        .flatMap(addrs)
        .filter((a) => !own.includes(a))
        .sort(),
    );
  }
});

test("hosts and their groups from ansible-inventory --list (through children), addresses from the vars", () => {
  const hosts = hostsOfList({
    _meta: {
      hostvars: {
        a: { ansible_host: "192.0.2.1" },
        b: { aplspawn_address: "192.0.2.2", ansible_host: "b.x", aplspawn_command: "/opt/aplspawn" },
      },
    },
    all: { children: ["ungrouped", "aplspawn_hosts"] },
    aplspawn_hosts: { children: ["rack1"] },
    rack1: { hosts: ["a", "b"] },
    ungrouped: { hosts: ["c"] },
  });
  const byName = (n: string) => hosts.find((h) => h.name === n);
  assert.deepEqual(
    ["a", "b", "c"].map((n) => [byName(n)?.address, byName(n)?.groups.includes("aplspawn_hosts")]),
    [
      ["192.0.2.1", true],
      ["192.0.2.2", true],
      ["c", false],
    ],
  );
  assert.equal(byName("b")?.ssh?.aplspawn, "/opt/aplspawn");
  assert.equal(byName("a")?.ssh?.aplspawn, undefined);
});

test("validate reads the inventory with ansible-inventory: missing, unparsable, fitting", {
  skip: requires("ansible-inventory"),
}, () => {
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-x32-"));
  try {
    const cfg = join(dir, "lab.yaml");
    const validate = () => {
      try {
        return {
          code: 0,
          out: execFileSync(process.execPath, [MAIN, "validate", cfg], {
            cwd: dir,
            encoding: "utf8",
            stdio: "pipe",
          }),
        };
      } catch (e) {
        const x = e as { status: number; stdout: string; stderr: string };
        return { code: x.status, out: x.stdout + x.stderr };
      }
    };
    writeFileSync(
      cfg,
      `lab: x32\nworkdir: ${dir}/w\ncluster: {inventory: hosts.ini}\ncontainers: {count: 4, machinesDir: ${dir}/m}\n`,
    );
    let r = validate();
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /cluster\.inventory.*hosts\.ini does not exist/s);
    writeFileSync(join(dir, "hosts.ini"), "[aplspawn_hosts\nh1\n");
    r = validate();
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /ansible-inventory cannot parse/);
    writeFileSync(
      join(dir, "hosts.ini"),
      "[aplspawn_hosts]\nh1 ansible_host=192.0.2.1\nh2 ansible_host=192.0.2.2\n",
    );
    r = validate();
    assert.equal(r.code, 0, r.out);
    writeFileSync(join(dir, "hosts.ini"), "[others]\nh1 ansible_host=192.0.2.1\n");
    r = validate();
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /no host in group aplspawn_hosts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const MAIN = join(import.meta.dirname, "..", "..", "cli", "main.js");

test("the one inventory reaches a container through its host: a ProxyCommand as Ansible reaches the host, quoted", () => {
  const proxy = proxyCommand({
    host: "192.0.2.11",
    user: "root",
    port: 2222,
    key: "/home/u/my key",
    args: "-o UserKnownHostsFile=/k",
  });
  assert.equal(
    proxy,
    "ssh -o UserKnownHostsFile=/k -o BatchMode=yes -p 2222 -i '/home/u/my key' -o IdentitiesOnly=yes -W %h:%p root@192.0.2.11",
  );
  const text = renderInventory({
    format: "ini",
    group: "aplspawned",
    hosts: [{ name: "a-10", ip: "10.10.12.10", user: "test", proxy }],
    user: "test",
    key: "/w/k",
    knownHosts: "/w/known_hosts",
    controlPathDir: "/run/cp",
  });
  assert.match(
    text,
    /ansible_ssh_common_args=".*ProxyCommand=ssh -o UserKnownHostsFile=\/k .*-W %h:%p root@192\.0\.2\.11/,
  );
  // Without a proxy, nothing changes for a lab on one host.
  assert.doesNotMatch(
    renderInventory({
      format: "ini",
      group: "g",
      hosts: [{ name: "a", ip: "10.0.0.2" }],
      user: "t",
      key: "/k",
      knownHosts: "/kh",
      controlPathDir: "/c",
    }),
    /ProxyCommand/,
  );
});

test("a file:// image is the control node's: each share names the host's copy, pinned to the verified digest, never built there; a download is the hosts' own", () => {
  const digest = "a".repeat(64);
  const c = parseConfig(
    base(
      `image: {url: "file:///srv/img/base.raw", build: {suite: bookworm}}
containers:
  machinesDir: /tmp/m
  sets:
    - {name: web, count: 2}
    - {name: db, count: 1, image: {url: "https://example.test/db.raw", sha256: "${"b".repeat(64)}"}}
`,
    ),
    "t.yaml",
  );
  const copied = copiedImages(c);
  assert.deepEqual(copied, [{ src: "/srv/img/base.raw", dest: hostImagePath(c, "/srv/img/base.raw") }]);
  assert.match(copied[0]!.dest, /^\/tmp\/w\/\.cluster\/c1\.images\/[0-9a-f]{12}-base\.raw$/);
  const { plan, problems } = splitLab(c, HOSTS, { "/srv/img/base.raw": digest });
  assert.deepEqual(problems, []);
  for (const s of plan!.shares) {
    const share = parseConfig(stringify(s.config), "share.yaml");
    assert.equal(share.image.url, `file://${copied[0]!.dest}`);
    assert.equal(share.image.sha256, digest);
    assert.equal(share.image.build, undefined, "a host never builds the control node's image");
    const db = share.containers.sets?.find((x) => x.name === "db");
    if (db) assert.equal(db.image?.url, "https://example.test/db.raw", "a download stays the host's own");
  }
  // Without a verified digest (validate), the config's own (none here) is kept.
  const unverified = splitLab(c, HOSTS).plan!.shares[0]!.config.image as { sha256?: string };
  assert.equal(unverified.sha256, undefined);
});
