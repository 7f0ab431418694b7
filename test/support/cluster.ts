// The fixture of a lab across hosts, for the real cluster tests: hosts simulated as booted systemd
// hosts (systemd-host.ts) with sshd and aplspawn, plugged into a "datacenter" bridge of a
// TestNamespace that drops every packet whose source is not the sending host's own address.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { ensureTestImage, TEST_CACHE } from "./image.js";
import { CLI, type NsResult, type NsSnapshot, TestNamespace, tempDir } from "./ns.js";
import { type SystemdHost, withSystemdHosts } from "./systemd-host.js";

/** openssh-server unpacked for the hosts (their root has only the client), bound in at /debs. */
export const DEBS = join(TEST_CACHE, "debs", "openssh-server");

/** APLSPAWN_TEST_TRACE=1: lines on stderr, to find where a cluster test's time and CPU go. */
const TRACING = Boolean(process.env.APLSPAWN_TEST_TRACE);

/** A line of the trace (APLSPAWN_TEST_TRACE=1). */
function trace(line: string): void {
  if (TRACING) process.stderr.write(`# ${line}\n`);
}

/** CPU seconds used so far: each host's and this process's (cpuUsage). */
interface CpuUsage {
  hosts: number[];
  self: number;
}

/**
 * CPU seconds so far, for the trace: each host's (its cgroup, containers included) and this
 * process's with its waited-for children (the control node's CLI runs and Ansible).
 */
async function cpuUsage(hosts: readonly string[]): Promise<CpuUsage> {
  const used = await Promise.all(
    hosts.map(async (h) => {
      const stat = await readFile(`/sys/fs/cgroup/unified/aplspawn-test/${h}/cpu.stat`, "utf8").catch(
        () => "",
      );
      return Number(/usage_usec (\d+)/.exec(stat)?.[1] ?? 0) / 1e6;
    }),
  );
  // utime, stime, cutime, cstime: fields 14-17 of /proc/self/stat, in clock ticks.
  const f = (await readFile("/proc/self/stat", "utf8")).split(") ")[1]?.split(" ") ?? [];
  return { hosts: used, self: [11, 12, 13, 14].reduce((a, i) => a + Number(f[i] ?? 0), 0) / 100 };
}

/** CPU seconds of each host and this process, and their total (since `from`, if given). */
function cpuText(hosts: readonly string[], now: CpuUsage, from?: CpuUsage): string {
  const d = (x: number, y = 0) => x - y;
  const each = now.hosts.map((s, i) => d(s, from?.hosts[i]));
  const self = d(now.self, from?.self);
  const total = each.reduce((a, b) => a + b, self);
  return `CPU ${hosts.map((h, i) => `${h} ${each[i]!.toFixed(1)}`).join(", ")}, test process ${self.toFixed(1)}, total ${total.toFixed(1)} s`;
}

/**
 * `run`, traced (APLSPAWN_TEST_TRACE=1) with `what`: its wall time, exit code, and the CPU the hosts
 * and this process used meanwhile (commands run side by side share it).
 */
async function traced<T extends NsResult>(
  what: string,
  hosts: readonly string[],
  run: () => Promise<T>,
): Promise<T> {
  if (!TRACING) return run();
  const t0 = Date.now();
  const cpu0 = await cpuUsage(hosts);
  const r = await run();
  const cpu = cpuText(hosts, await cpuUsage(hosts), cpu0);
  trace(`${((Date.now() - t0) / 1000).toFixed(1)} s, ${cpu}: ${what.replace(/\s+/g, " ")} → ${r.exitCode}`);
  return r;
}

/** The result, when its exit code is 0; else fail the test with its output. */
export function ok(r: NsResult, what: string): NsResult {
  assert.equal(r.exitCode, 0, `${what} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** openssh-server for the hosts, fetched once with apt-get download. */
export async function sshDebs(): Promise<void> {
  if (existsSync(join(DEBS, "root", "usr", "sbin", "sshd"))) return;
  await mkdir(DEBS, { recursive: true });
  if (!(await readdir(DEBS)).some((f) => f.startsWith("openssh-server")))
    execFileSync("apt-get", ["download", "openssh-server", "openssh-sftp-server", "libwrap0"], {
      cwd: DEBS,
      stdio: "ignore",
    });
  // Unpacked here: the hosts' root has no dpkg-deb.
  for (const f of await readdir(DEBS))
    if (f.endsWith(".deb")) execFileSync("dpkg-deb", ["-x", join(DEBS, f), join(DEBS, "root")]);
}

/**
 * What the lab changes on a host, to compare before up and after down (link indexes and IPv6's
 * duplicate address detection still running on the new link left out).
 */
export async function hostState(h: SystemdHost, workdir?: string): Promise<string> {
  const parts = [
    "ip -o link",
    "ip -o addr",
    "iptables-save | grep -v '^#'",
    "machinectl list --no-legend --no-pager",
    // What an overlay of routes sets: routes, proxy neighbour entries, and the sysctls they rely on.
    "ip -4 route show table all",
    "ip neigh show proxy",
    "sysctl -a -r '^net\\.ipv4\\.(ip_forward$|conf\\.(all|default|host0)\\.)'",
    "findmnt -rn -o TARGET | grep -E '^/var/lib/(machines|aplspawn)/' || true",
    // The shares' directories under the lab's workdir (when given).
    ...(workdir ? [`ls -A ${workdir}/.cluster`] : []),
  ];
  // One command on the host for all of them (each part headed by its command line).
  const script = parts.map((c) => `printf '%s\\n' ${shQuote(`$ ${c}`)}; ${c}`).join("\n");
  const r = await h.run(["sh", "-c", script]);
  return r.stdout.replace(/\d+: /g, "").replace(/ tentative/g, "");
}

/** s as one word of sh. */
const shQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/**
 * Make the host a cluster host: its datacenter address, sshd with the control node's key (pub),
 * aplspawn as /usr/local/bin/aplspawn. Returns the index of its veth's host side (iflink).
 */
export async function setUpHost(h: SystemdHost, address: string, pub: string): Promise<string> {
  const script = `set -e
ip addr add ${address}/24 dev host0
ip link set host0 up
tar -C /debs/root -cf - . | tar -C / -xf - --keep-directory-symlink
mkdir -p /run/sshd /root/.ssh
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
printf '%s\\n' '${pub}' > /root/.ssh/authorized_keys
chmod 700 /root/.ssh; chmod 600 /root/.ssh/authorized_keys
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nUsePAM no\nSubsystem sftp /usr/lib/openssh/sftp-server\n' > /etc/ssh/sshd_config
grep -q '^sshd:' /etc/passwd || echo 'sshd:x:990:65534::/run/sshd:/usr/sbin/nologin' >> /etc/passwd
/usr/sbin/sshd -t
systemd-run --unit=sshd-test /usr/sbin/sshd -D -e
i=0; until ss -ltn | grep -q ':22 '; do i=$((i+1)); [ $i -lt 100 ] || { journalctl -u sshd-test --no-pager | tail; exit 1; }; sleep 0.1; done
printf '#!/bin/sh\\nexec node ${join(CLI)} "$@"\\n' > /usr/local/bin/aplspawn
chmod 755 /usr/local/bin/aplspawn
for t in filter nat; do iptables -w -t $t -N APLSPAWN-TEST-INIT; iptables -w -t $t -X APLSPAWN-TEST-INIT; done
cat /sys/class/net/host0/iflink`;
  const r = ok(await h.run(["sh", "-c", script]), `setting up host ${address}`);
  return r.stdout.trim().split("\n").at(-1) ?? "";
}

/**
 * The host side of a host's veth (by its index in this namespace), moved onto the datacenter's
 * bridge in ns; the datacenter drops what the host sends from any address but its own.
 */
export async function plugIn(
  ns: TestNamespace,
  bridge: string,
  iflink: string,
  address: string,
  opts: { foreignSources?: boolean } = {},
): Promise<string> {
  const links = execFileSync("ip", ["-o", "link"], { encoding: "utf8" });
  const name = new RegExp(`^${iflink}: ([^:@]+)`, "m").exec(links)?.[1];
  assert.ok(name, `no link of index ${iflink} here`);
  execFileSync("ip", ["link", "set", name, "netns", String(ns.pid)]);
  ok(await ns.run("ip", ["link", "set", name, "master", bridge, "up"]), "plug in");
  if (opts.foreignSources) return name;
  // IPv4 and ARP.
  for (const rule of [
    ["-p", "IPv4", "--ip-src", "!", address],
    ["-p", "ARP", "--arp-ip-src", "!", address],
  ])
    ok(await ns.run("ebtables", ["-A", "FORWARD", "-i", name, ...rule, "-j", "DROP"]), "ebtables");
  return name;
}

/**
 * The hosts set up (setUpHost) and plugged into the datacenter's bridge in ns at once, then the
 * control node's files in dir: known_hosts with each host's key, and hosts.ini, the cluster's
 * inventory (group aplspawn_hosts, root with the key dir/id). Returns each host's datacenter port.
 * foreignSources: the datacenter is one plain L2 that lets any source pass (for an overlay of routes).
 */
export async function joinDatacenter(
  ns: TestNamespace,
  bridge: string,
  dir: string,
  hosts: readonly SystemdHost[],
  specs: readonly { name: string; address: string }[],
  opts: { foreignSources?: boolean } = {},
): Promise<string[]> {
  const pub = (await readFile(join(dir, "id.pub"), "utf8")).trim();
  const joined = await Promise.all(
    hosts.map(async (h, i) => {
      const { address } = specs[i]!;
      const port = await plugIn(ns, bridge, await setUpHost(h, address, pub), address, opts);
      const key = ok(await h.run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]), "host key").stdout;
      return { port, known: `${address} ${key.split(" ").slice(0, 2).join(" ")}` };
    }),
  );
  await writeFile(join(dir, "known_hosts"), `${joined.map((j) => j.known).join("\n")}\n`);
  const ssh = `-o UserKnownHostsFile=${dir}/known_hosts -o StrictHostKeyChecking=yes`;
  // The hosts' Python named, as an inventory of real hosts often does: no interpreter discovery on
  // each host at every play (a shell and a Python run).
  await writeFile(
    join(dir, "hosts.ini"),
    `[aplspawn_hosts]\n${specs
      .map(
        (x) =>
          `${x.name} ansible_host=${x.address} ansible_user=root ansible_ssh_private_key_file=${dir}/id ansible_ssh_common_args="${ssh}" ansible_python_interpreter=/usr/bin/python3`,
      )
      .join("\n")}\n`,
  );
  return joined.map((j) => j.port);
}

/** The control node's state without IPv6's duplicate address detection still running on a new port. */
export const settled = (s: NsSnapshot) => ({ ...s, addrs: s.addrs.replace(/ tentative/g, "") });

/**
 * Every host (hostState) and the control node (its namespace's snapshot) as before the lab: its
 * journal holds only `kept`, the one inventory and the split are gone.
 */
export async function assertAsBefore(
  when: string,
  o: {
    hosts: readonly SystemdHost[];
    names: readonly string[];
    before: readonly string[];
    ns: TestNamespace;
    control: NsSnapshot;
    workdir: string;
    lab: string;
    inventory: string;
  },
  kept: string[] = [],
): Promise<void> {
  for (const [i, h] of o.hosts.entries())
    assert.equal(
      await hostState(h, o.workdir),
      o.before[i],
      `${when}: host ${o.names[i]} differs from before`,
    );
  assert.deepEqual(
    settled(await o.ns.snapshot()),
    settled(o.control),
    `${when}: the control node differs from before`,
  );
  const journal = await Journal.open(realHost(), journalPath(join(o.workdir, o.lab)), o.lab, false);
  assert.deepEqual(
    journal.entries().map((e) => `${e.id}${e.kept ? " (kept)" : ""}`),
    kept,
    `${when}: the control node's journal holds more than the lab's kept state`,
  );
  assert.equal(existsSync(o.inventory), false, `${when}: the one inventory was left`);
  assert.equal(existsSync(join(o.workdir, o.lab, "cluster")), false, `${when}: the split was left`);
}

/** The datacenter withDatacenter made: its namespace (the control node's), the hosts joined to it. */
export interface Datacenter {
  ns: TestNamespace;
  /** The control node's directory: the key (id), known_hosts, hosts.ini and the caller's files. */
  dir: string;
  hosts: SystemdHost[];
  /** Each host's port on the datacenter's bridge (in ns), in the order of the hosts. */
  ports: string[];
  /** Run in the datacenter's namespace, in dir. */
  dc(argv: readonly string[]): Promise<NsResult>;
  /**
   * Write the lab's config, dir/lab.yaml: `yaml` with the control node's test image (a file://
   * URL names the control node's file: up copies it to each host and down removes the copies).
   */
  writeLab(yaml: string): Promise<void>;
  /** The CLI on dir/lab.yaml, run in the datacenter's namespace. */
  cli(args: readonly string[]): Promise<NsResult>;
}

/**
 * A datacenter for a lab across hosts, then `fn`, then everything goes: a TestNamespace (the
 * control node's) with a bridge at `gateway` (address/prefix), the control node's ssh key and
 * `files` in a temporary directory, the hosts booted at once (systemd-host.ts) with openssh-server
 * at /debs and each of `binds` (a file of the directory → its path on the hosts) bound in read-only,
 * then joined (joinDatacenter). The lab's `workdir` on this machine is removed at the end.
 */
export async function withDatacenter<T>(
  o: {
    bridge: string;
    gateway: string;
    hosts: readonly { name: string; address: string }[];
    workdir: string;
    /** The temporary directory's prefix. */
    prefix: string;
    /** Written in the directory before the hosts boot (a path relative to it → its text). */
    files?: Record<string, string | { text: string; mode: number }>;
    binds?: Record<string, string>;
    foreignSources?: boolean;
  },
  fn: (d: Datacenter) => Promise<T>,
): Promise<T> {
  await sshDebs();
  const t = await tempDir(o.prefix);
  const ns = await TestNamespace.create();
  const names = o.hosts.map((h) => h.name);
  const dc = (argv: readonly string[]): Promise<NsResult> =>
    traced(`dc ${argv.join(" ").slice(0, 120)}`, names, () =>
      ns.run(argv[0] ?? "", argv.slice(1), { timeoutMs: 900_000, cwd: t.path }),
    );
  const t0 = Date.now();
  try {
    ok(await dc(["ip", "link", "add", o.bridge, "type", "bridge"]), "bridge");
    ok(await dc(["ip", "addr", "add", o.gateway, "dev", o.bridge]), "address");
    ok(await dc(["ip", "link", "set", o.bridge, "up"]), "up");
    ok(await dc(["ip", "link", "set", "lo", "up"]), "lo");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(t.path, "id")]);
    for (const [f, x] of Object.entries(o.files ?? {})) {
      await mkdir(dirname(join(t.path, f)), { recursive: true });
      await writeFile(join(t.path, f), typeof x === "string" ? x : x.text, {
        mode: typeof x === "string" ? 0o644 : x.mode,
      });
    }
    const binds = Object.entries(o.binds ?? {}).map(([f, at]) => `--bind-ro=${join(t.path, f)}:${at}`);
    let result: { value: T } | undefined;
    await withSystemdHosts(
      o.hosts.map((h) => h.name),
      ["--network-veth", `--bind-ro=${DEBS}:/debs`, ...binds],
      async (hosts) => {
        trace(`hosts booted ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        const ports = await joinDatacenter(ns, o.bridge, t.path, hosts, o.hosts, {
          foreignSources: o.foreignSources ?? false,
        });
        if (TRACING)
          trace(
            `hosts joined ${((Date.now() - t0) / 1000).toFixed(1)} s; ${cpuText(names, await cpuUsage(names))}`,
          );
        const config = join(t.path, "lab.yaml");
        const writeLab = async (yaml: string) => {
          const image = await ensureTestImage();
          await writeFile(config, `${yaml}image: {url: "file://${image.path}", sha256: "${image.sha256}"}\n`);
        };
        const cli = (args: readonly string[]) => dc(["node", CLI, "-c", config, ...args]);
        const traceHost = (h: SystemdHost, i: number): SystemdHost => ({
          ...h,
          run: (argv, opts) =>
            traced(`${names[i]} ${argv.join(" ").slice(0, 100)}`, names, () => h.run(argv, opts)),
        });
        const seen = TRACING ? hosts.map(traceHost) : hosts;
        result = { value: await fn({ ns, dir: t.path, hosts: seen, ports, dc, writeLab, cli }) };
        if (TRACING)
          trace(
            `scenario done ${((Date.now() - t0) / 1000).toFixed(1)} s; ${cpuText(names, await cpuUsage(names))}`,
          );
      },
    );
    trace(`hosts powered off ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(result, "the hosts ran no scenario");
    return result.value;
  } finally {
    await ns.destroy();
    await rm(o.workdir, { recursive: true, force: true });
    await t.cleanup();
  }
}

/** A lab across the datacenter's hosts (labAcross), with the checks the cluster tests share. */
export interface LabAcross {
  /** The one inventory on the control node. */
  inventory: string;
  /** Every host and the control node as before the lab (assertAsBefore), with only `kept` in the journal. */
  asBefore(when: string, kept?: string[]): Promise<void>;
  /** `run up`, which must succeed, its table naming each host's containers (what it took shown in t). */
  up(t: TestContext, what: string): Promise<NsResult>;
  /**
   * Ansible through the one inventory reaches every container, and each container every lab address
   * by TCP and by an echo of `mtu` bytes with "don't fragment" (probe.py in the directory).
   */
  reachesAll(mtu: number, what: string): Promise<void>;
  /** `run down` keeps the lab's key on the control node, `--purge` takes it: each leaves all as before. */
  down(): Promise<void>;
}

/**
 * The lab `name` across the datacenter's hosts: its config written (Datacenter.writeLab: its bridge
 * br-`name` at `address`, the containers `name`-N, as many as onHost holds, from `ipRange`), and every
 * host (hostState with the lab's workdir) and the control node taken as they are now, before it.
 * onHost: the containers' lab addresses, host by host (named `name`-last octet).
 */
export async function labAcross(
  d: Datacenter,
  lab: {
    name: string;
    workdir: string;
    hosts: readonly { name: string; address: string }[];
    onHost: readonly (readonly string[])[];
    address: string;
    ipRange: readonly [string, string];
    overlay?: "routes";
    /** containers.init: `script` (sshd alone) where the test is about the network, not the boot. */
    init?: "script";
  },
): Promise<LabAcross> {
  const n = lab.name;
  await d.writeLab(`lab: ${n}
workdir: ${lab.workdir}
cluster: {inventory: hosts.ini${lab.overlay ? `, overlay: ${lab.overlay}` : ""}}
network: {bridge: br-${n}, address: ${lab.address}}
containers: {count: ${lab.onHost.flat().length}, prefix: ${n}-, ipRange: [${lab.ipRange.join(", ")}], machinesDir: /var/lib/machines/${n}, readyTimeout: 120${lab.init ? `, init: ${lab.init}` : ""}}
inventory: {file: inventory.ini}
`);
  const inventory = join(d.dir, "inventory.ini");
  const before = await Promise.all(d.hosts.map((h) => hostState(h, lab.workdir)));
  const control = await d.ns.snapshot();
  const asBefore = (when: string, kept: string[] = []) =>
    assertAsBefore(
      when,
      {
        hosts: d.hosts,
        names: lab.hosts.map((x) => x.name),
        before,
        ns: d.ns,
        control,
        workdir: lab.workdir,
        lab: lab.name,
        inventory,
      },
      kept,
    );
  const ansible = async (args: string[], what: string) =>
    ok(await d.dc(["ansible", "-i", inventory, ...args]), what);
  return {
    inventory,
    asBefore,
    async up(t, what) {
      const up = ok(await d.cli(["run", "up"]), what);
      // What up took (Ansible included), for the docs: shown, never asserted.
      t.diagnostic(up.stdout.split("\n").find((l) => /\bup: \d+ changed/.test(l)) ?? "");
      for (const [i, x] of lab.hosts.entries()) {
        const names = (lab.onHost[i] ?? []).map((ip) => `${lab.name}-${ip.split(".")[3]}`);
        assert.ok(up.stdout.includes(`${x.name} (${x.address}): ${names.join(", ")}`), up.stdout);
      }
      return up;
    },
    async reachesAll(mtu, what) {
      // One Ansible run: the probe on every container through the one inventory (as root). Each
      // container answers CHANGED (Ansible reached it, the script exited 0) with a line for every
      // lab address: TCP and the full-MTU echo both passed.
      const all = lab.onHost.flat();
      const probe = await ansible(
        ["all", "-o", "-b", "-m", "script", "-a", `${d.dir}/probe.py ${all.join(" ")}`],
        what,
      );
      const answers = new Map<string, string[]>();
      for (const [, name, json] of probe.stdout.matchAll(/^(\S+) \| CHANGED => (\{.*\})$/gm))
        answers.set(name!, (JSON.parse(json!) as { stdout_lines: string[] }).stdout_lines);
      const names = all.map((ip) => `${n}-${ip.split(".")[3]}`);
      assert.deepEqual([...answers.keys()].sort(), [...names].sort(), probe.stdout);
      for (const [name, lines] of answers)
        assert.deepEqual(
          lines,
          all.map((ip) => `${ip} tcp ok, df ${mtu} ok`),
          `${name} did not reach every lab address:\n${probe.stdout}`,
        );
    },
    async down() {
      ok(await d.cli(["run", "down"]), "run down with cluster");
      await asBefore("after run down", ["lab.sshkey (kept)"]);
      ok(await d.cli(["run", "down", "--purge"]), "run down --purge with cluster");
      await asBefore("after run down --purge");
    },
  };
}
