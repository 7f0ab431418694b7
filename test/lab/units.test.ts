// The lab's pure parts, without root: account files, known_hosts, inventories (parsed by real
// ansible-inventory when installed), mountinfo, nspawn's argv, and what each workflow composes and
// which journal entries its undo steps select.
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { parse } from "yaml";
import { main } from "../../cli/main.js";
import { parseConfig } from "../../config/load.js";
import { mountHolding, mountOn, parseMountinfo, selfBindAt } from "../../src/host/mounts.js";
import { realHost } from "../../src/host/real-host.js";
import { runContext } from "../../src/host/run-scope.js";
import { accountProblem, addAccount } from "../../src/lab/accounts.js";
import { entryKept, entryScope } from "../../src/lab/entries.js";
import { claimRange, rangeOf, releaseRange } from "../../src/lab/id-ranges.js";
import { controlPathDir, renderInventory } from "../../src/lab/inventory.js";
import { knownHostsLine, withKnownHost } from "../../src/lab/ssh.js";
import { printable } from "../../src/runner/report.js";
import type { GroupStep, Step, TaskContext, UndoStep } from "../../src/runner/task.js";
import { holds, listTaskIds } from "../../src/runner/task.js";
import { nspawnArgs } from "../../tasks/container/nspawn.js";
import { labShare } from "../../tasks/container/share.js";
import { inotifyFor } from "../../tasks/host/inotify.js";
import { taskRegistry } from "../../tasks/index.js";
import { cleanup } from "../../workflows/cleanup.js";
import { down } from "../../workflows/down.js";
import { workflows } from "../../workflows/index.js";
import { reset } from "../../workflows/reset.js";
import { spawn } from "../../workflows/spawn.js";
import { stop } from "../../workflows/stop.js";
import { up } from "../../workflows/up.js";
import { withTempDir } from "../support/ns.js";
import { type RecordingHost, recordingHost } from "../support/recording-host.js";

const DEBIAN = {
  passwd: "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  group: "root:x:0:\nshadow:x:42:\nsudo:x:27:\nnogroup:x:65534:\n",
  shadow: "root:*:19000:0:99999:7:::\n",
  gshadow: "root:*::\nshadow:*::\n",
};

test("addAccount adds group, user and shadow lines once, with uid = gid, and keeps what exists", () => {
  const a = addAccount(DEBIAN, "test", "test");
  assert.deepEqual(a.changed, ["group", "gshadow", "passwd", "shadow"]);
  assert.equal(a.uid, 1000);
  assert.equal(a.gid, 1000);
  assert.equal(a.home, "/home/test");
  assert.match(a.files.passwd, /^test:x:1000:1000::\/home\/test:\/bin\/bash$/m);
  assert.match(a.files.group, /^test:x:1000:$/m);
  assert.match(a.files.shadow, /^test:\*:/m);
  assert.deepEqual(addAccount(a.files, "test", "test").changed, [], "idempotent");
  // An existing group is used as it is; an existing user is not rewritten.
  const b = addAccount({ ...DEBIAN, group: `${DEBIAN.group}ops:x:1500:\n` }, "ann", "ops");
  assert.equal(b.gid, 1500);
  assert.equal(b.uid, 1500);
  const c = addAccount({ ...a.files }, "test", "sudo");
  assert.deepEqual(c.changed, []);
  assert.equal(c.gid, 1000, "the user keeps its own primary group");
});

test("addAccount: a group lost from the group file comes back with the user's own gid", () => {
  const a = addAccount(DEBIAN, "test", "test");
  const lost = { ...a.files, group: DEBIAN.group };
  const b = addAccount(lost, "test", "test");
  assert.match(b.files.group, /^test:x:1000:$/m);
  assert.equal(b.gid, 1000);
});

test("accountProblem refuses a container's passwd line the host must not use", () => {
  const fine = { uid: 1000, gid: 1000, home: "/home/test" };
  assert.equal(accountProblem(fine), undefined);
  for (const home of [
    "/../../etc",
    "/home/../../x",
    "home/test",
    "/",
    "/home//test",
    "/home/test/",
    "/home/\ntest",
  ])
    assert.ok(accountProblem({ ...fine, home }), `home ${JSON.stringify(home)} is refused`);
  for (const uid of [-1, Number.NaN, 2 ** 31, 1.5]) assert.ok(accountProblem({ ...fine, uid }), `uid ${uid}`);
  assert.ok(accountProblem({ ...fine, gid: Number.NaN }), "gid NaN");
});

test("printable removes escape sequences and control characters a container could send to a terminal", () => {
  const E = String.fromCharCode(27);
  const forged = `ok${E}[31m red${E}[0m${E}]0;pwned title${String.fromCharCode(7)} ${E}[2J\rfake prompt$ \u009b6n\ttab\nnext${String.fromCharCode(0, 8)}`;
  assert.equal(printable(forged), "ok red fake prompt$ 6n\ttab\nnext");
});

test("known_hosts: one line per container, replaced or removed by name", () => {
  const l10 = knownHostsLine("c10", "10.0.0.10", "ssh-ed25519 AAAA root@c10\n");
  assert.equal(l10, "c10,10.0.0.10 ssh-ed25519 AAAA");
  let t = withKnownHost("", "c10", l10);
  t = withKnownHost(t, "c11", knownHostsLine("c11", "10.0.0.11", "ssh-ed25519 BBBB"));
  t = withKnownHost(t, "c10", knownHostsLine("c10", "10.0.0.10", "ssh-ed25519 CCCC"));
  assert.equal(t, "c11,10.0.0.11 ssh-ed25519 BBBB\nc10,10.0.0.10 ssh-ed25519 CCCC\n");
  assert.equal(withKnownHost(withKnownHost(t, "c10", undefined), "c11", undefined), "");
  // A container named like the prefix of another is not touched.
  assert.equal(withKnownHost("c1,10.0.0.1 ssh-ed25519 X\n", "c10", undefined), "c1,10.0.0.1 ssh-ed25519 X\n");
});

test("mountinfo: mount points with escaped spaces, fs type and overlay options", () => {
  const m = parseMountinfo(
    "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n" +
      "37 35 0:5 / /proc rw - proc proc rw\n",
  );
  assert.deepEqual(m[0], {
    id: 36,
    parent: 35,
    dev: "98:0",
    root: "/",
    mountPoint: "/mnt/a b",
    options: ["rw", "noatime"],
    fstype: "overlay",
    source: "overlay",
    superOptions: ["rw", "lowerdir=/l", "upperdir=/u", "workdir=/w"],
  });
  assert.equal(m[1]?.fstype, "proc");
});

test("mountinfo: a shared mount's peer group; a bind of a directory onto itself, and what is mounted over it", () => {
  const m = parseMountinfo(
    [
      "46 1 254:0 / / rw - ext4 /dev/vda rw",
      "60 46 254:1 / /var/lib rw shared:3 - ext4 /dev/vdb rw",
      // /tmp/w/lab bound onto itself (a shared mount of its own), a disk mounted in it.
      "67 46 254:0 /tmp/w/lab /tmp/w/lab rw shared:1 - ext4 /dev/vda rw",
      "72 67 7:2 / /tmp/w/lab/disk rw shared:6 - ext4 /dev/loop2 rw",
      // /var/lib/m/c1 (in another filesystem) bound onto itself, an overlay over it.
      "69 60 254:1 /m/c1 /var/lib/m/c1 rw shared:4 - ext4 /dev/vdb rw",
      "78 69 0:43 / /var/lib/m/c1 rw shared:8 - overlay overlay rw,upperdir=/u",
      // Another directory bound there is no bind of the directory onto itself.
      "80 46 254:0 /srv /tmp/w/other rw - ext4 /dev/vda rw",
    ].join("\n"),
  );
  assert.equal(m[0]?.peerGroup, undefined);
  assert.equal(m[2]?.peerGroup, 1);
  assert.equal(selfBindAt(m, "/tmp/w/lab/")?.id, 67);
  assert.equal(selfBindAt(m, "/var/lib/m/c1")?.id, 69);
  assert.equal(selfBindAt(m, "/tmp/w/other"), undefined);
  assert.equal(selfBindAt(m, "/tmp/w/lab/disk"), undefined, "a device's mount is no bind");
  assert.equal(mountOn(m, "/var/lib/m/c1")?.id, 78, "the overlay over the bind");
  assert.equal(mountOn(m, "/tmp/w/lab"), undefined, "nothing over the bind");
  assert.equal(mountOn(m, "/tmp/w/other")?.id, 80);
  assert.equal(mountHolding(m, "/tmp/w/lab/containers/c1")?.id, 67);
  assert.equal(mountHolding(m, "/tmp/w/labx")?.id, 46, "a sibling's mount holds nothing of it");
  assert.equal(mountHolding(m, "/var/lib/m/c1")?.id, 78, "the last one mounted there");
});

test("lab.share: a bind of the lab directory onto itself under a private mount; none under a shared one, nor over mounts an older run made there", async () => {
  const ctx = (mountinfo: string) => {
    const h = recordingHost();
    h.files.set("/proc/self/mountinfo", Buffer.from(`${mountinfo}\n`));
    const c: TaskContext = { ...runContext(h), tty: false, info: () => undefined, progress: () => undefined };
    return c;
  };
  const root = "46 1 254:0 / / rw - ext4 /dev/vda rw";
  const p = { dir: "/w/lab" };
  const mounts = (c: TaskContext) =>
    (c.host as RecordingHost).calls
      .filter((x) => x.op === "exec" && x.detail.startsWith("mount"))
      .map((x) => x.detail);
  const priv = ctx(root);
  assert.equal(holds(await labShare.check(priv, p)), false, "private: not shared yet");
  await labShare.run(priv, p, { existed: false });
  assert.deepEqual(mounts(priv), ["mount --bind --make-shared /w/lab /w/lab"]);
  const shared = ctx("46 1 254:0 / / rw shared:1 - ext4 /dev/vda rw");
  assert.equal(holds(await labShare.check(shared, p)), true, "in a shared mount: nothing to do");
  const older = ctx(`${root}\n70 46 7:0 / /w/lab/lower ro - squashfs /dev/loop0 ro`);
  assert.equal(holds(await labShare.check(older, p)), true, "an older lab's mounts are never hidden");
  await assert.rejects(labShare.run(older, p, { existed: false }), /has mounts in it already/);
  const bound = ctx(`${root}\n67 46 254:0 /w/lab /w/lab rw - ext4 /dev/vda rw`);
  await labShare.run(bound, p, { existed: true });
  assert.deepEqual(mounts(bound), ["mount --make-shared /w/lab"], "a bind there is made shared, not stacked");
});

test("nspawn argv: registered with machined where it answers (--keep-unit: its own scope), --register=no --keep-unit elsewhere; a user namespace's range", () => {
  const p = {
    name: "c10",
    merged: "/m/c10",
    logFile: "/l",
    bridge: "br0",
    init: "boot" as const,
    stopTimeoutMs: 1,
  };
  const plain = nspawnArgs(p, false);
  assert.deepEqual(plain, [
    "--machine=c10",
    "--directory=/m/c10",
    "--network-bridge=br0",
    "--link-journal=no",
    "--register=no",
    "--keep-unit",
    "--boot",
  ]);
  // Registered, the machine's unit is the scope it runs in.
  const registered = nspawnArgs(p, true);
  assert.ok(!registered.some((a) => a.startsWith("--register")) && registered.includes("--keep-unit"));
  assert.equal(nspawnArgs({ ...p, init: "script" }, false).at(-1), "/root/starter/startup.sh");
  // In a user namespace (containers.privateUsers): the container's range, ownership left as it is.
  const userns = nspawnArgs(p, false, 0xa0000);
  assert.ok(
    userns.includes("--private-users=655360:65536") && userns.includes("--private-users-ownership=off"),
  );
  assert.ok(!plain.some((a) => a.startsWith("--private-users")));
});

test("the inotify limit grows with the lab", () => {
  assert.deepEqual(inotifyFor(3), { minimum: 248, value: 8192 });
  assert.equal(inotifyFor(250).value, 10128);
});

const cfg = (concurrency = 10) =>
  parseConfig(
    `workdir: /tmp/w\ncontainers: {count: 3, concurrency: ${concurrency}, machinesDir: /tmp/m}\n`,
    "test.yaml",
  );
const flat = (steps: Step[]): Step[] =>
  steps.flatMap((s) => (s.type === "group" ? [s, ...flat(s.steps)] : [s]));
const undos = (steps: Step[]) => flat(steps).filter((s): s is UndoStep => s.type === "undo");
const entry = (id: string, kind = id.replace(/\[.*$/, "")) => ({ id, kind });

test("up composes preflight first, containers concurrently, inventory last; every kind is registered", () => {
  const c = cfg(2);
  const wf = up(c, {});
  const ids = listTaskIds(wf.steps);
  assert.equal(ids[0], "host.preflight");
  assert.equal(ids[1], "host.capacity");
  assert.equal(ids[2], "host.inotify");
  assert.equal(ids.at(-2), "lab.inventory");
  assert.equal(ids.at(-1), "lab.ansible-ping");
  assert.ok(ids.indexOf("lab.sshkey") < ids.indexOf("container.dirs[aplspawn10]"));
  const group = flat(wf.steps).find((s): s is GroupStep => s.type === "group" && s.id === "containers");
  assert.equal(group?.concurrency, 2);
  assert.equal(up(c, { concurrency: 7 }).steps.find((s) => s.id === "containers")?.type, "group");
  const registry = taskRegistry();
  for (const s of flat(wf.steps)) if (s.type === "task") assert.ok(registry.has(s.def.kind), s.def.kind);
  // A smaller count: the extra containers' entries are undone, the others kept.
  const extra = undos(wf.steps).find((u) => u.id === "containers.extra")!;
  assert.equal(extra.select(entry("container.nspawn[aplspawn13]")), true);
  assert.equal(extra.select(entry("container.nspawn[aplspawn12]")), false);
  assert.equal(extra.select(entry("net.bridge")), false);
  // --only is spawn's and stop's: the CLI refuses it for up (test/cli/cli.test.ts).
  assert.deepEqual(workflows.up?.options, ["concurrency", "owner", "ansibleUser", "keepGoing"]);
});

test("network.mtu reaches each container's address step (host0's MTU), and nothing else's", () => {
  const c = parseConfig(
    "workdir: /tmp/w\nnetwork: {mtu: 1450}\ncontainers: {count: 2, machinesDir: /tmp/m}\n",
    "test.yaml",
  );
  const tasks = flat(up(c, {}).steps).filter((s) => s.type === "task");
  const withMtu = tasks.filter((s) => (s.params as { mtu?: number }).mtu !== undefined).map((s) => s.id);
  assert.deepEqual(withMtu, ["container.address[aplspawn10]", "container.address[aplspawn11]"]);
  for (const s of tasks.filter((t) => t.id.startsWith("container.address[")))
    assert.equal((s.params as { mtu?: number }).mtu, 1450);
  const none = flat(up(cfg(2), {}).steps).filter(
    (s) => s.type === "task" && s.id.startsWith("container.address["),
  );
  for (const s of none) assert.equal((s as { params: { mtu?: number } }).params.mtu, undefined);
});

test("down undoes containers, image, network, then the rest; the lab's state stays unless --purge", () => {
  const c = cfg();
  const plain = undos(down(c, {}).steps);
  assert.deepEqual(
    plain.map((u) => u.id),
    ["down.containers", "down.image", "down.network", "down.rest"],
  );
  const selected = (us: UndoStep[], e: { id: string; kind: string }) =>
    us.filter((u) => u.select(e)).map((u) => u.id);
  assert.deepEqual(selected(plain, entry("container.nspawn[x10]")), ["down.containers", "down.rest"]);
  assert.deepEqual(selected(plain, entry("container.upper[x10]")), []);
  assert.deepEqual(selected(plain, entry("lab.sshkey")), []);
  assert.deepEqual(selected(plain, entry("image.loop")), ["down.image", "down.rest"]);
  assert.deepEqual(selected(plain, entry("net.bridge")), ["down.network", "down.rest"]);
  assert.deepEqual(selected(plain, entry("host.inotify")), ["down.rest"]);
  const purge = undos(down(c, { purge: true }).steps);
  assert.deepEqual(selected(purge, entry("container.upper[x10]")), ["down.containers", "down.rest"]);
  assert.deepEqual(selected(purge, entry("lab.sshkey")), ["down.rest"]);
});

test("stop --only undoes just those containers and keeps the image attached; unknown names are usage errors", () => {
  const c = cfg();
  const only = stop(c, { only: ["aplspawn11"] }).steps;
  assert.deepEqual(
    only.map((s) => s.id),
    ["stop.containers", "stop.inotify"],
  );
  const u = only[0] as UndoStep;
  assert.equal(u.select(entry("container.nspawn[aplspawn11]")), true);
  assert.equal(u.select(entry("container.nspawn[aplspawn10]")), false);
  assert.equal(u.select(entry("container.upper[aplspawn11]")), false, "the upper layer stays");
  assert.ok(stop(c, {}).steps.length > 2, "a full stop detaches the image too");
  // The hold on the inotify limit goes once no container of the lab is left running in the journal.
  const hold = only[1] as UndoStep;
  const inotify = entry("host.inotify");
  const kept = [inotify, entry("container.upper[aplspawn11]"), entry("lab.sshkey"), entry("net.bridge")];
  assert.equal(hold.select(inotify, kept), true);
  assert.equal(hold.select(inotify, [...kept, entry("container.nspawn[aplspawn10]")]), false);
  assert.equal(hold.select(inotify), false, "without the journal, the hold is kept");
  assert.equal(hold.select(entry("net.forwarding"), kept), false);
  assert.throws(() => stop(c, { only: ["nope"] }), /no container named nope/);
  const spawnIds = listTaskIds(spawn(c, { only: ["aplspawn12"] }).steps);
  assert.ok(spawnIds.includes("container.nspawn[aplspawn12]"));
  assert.ok(!spawnIds.includes("container.nspawn[aplspawn10]"));
});

test("reset --only undoes all of those containers' entries, lasting state included, then runs up's steps for them alone; --only is required", () => {
  const c = cfg(4);
  const wf = reset(c, { only: ["aplspawn11"] });
  const ids = listTaskIds(wf.steps);
  // The lab's steps as spawn has them (the network must be up), before anything is undone.
  assert.deepEqual(ids.slice(0, ids.indexOf("reset.containers")), [
    "host.preflight",
    "host.capacity",
    "host.inotify",
    "lab.claim",
    "lab.share",
    "image.loop",
    "image.lower",
    "image.packages",
    "image.layer",
    "lab.sshkey",
  ]);
  // Then exactly up's container steps of that container, in up's order.
  const upSteps = listTaskIds(up(c, {}).steps).filter((id) => id.endsWith("[aplspawn11]"));
  assert.deepEqual(ids.slice(ids.indexOf("reset.containers") + 1), upSteps);
  const group = wf.steps.at(-1) as GroupStep;
  assert.equal(group.id, "containers");
  assert.equal(group.concurrency, 4);
  assert.equal(reset(c, { only: ["aplspawn11"], concurrency: 2 }).steps.at(-1)?.type, "group");
  // The undo takes every entry of the container, its upper layer and host key too, and no other's.
  const u = undos(wf.steps)[0]!;
  for (const id of ["container.nspawn", "container.overlay", "container.upper", "container.hostkeys"]) {
    assert.equal(u.select(entry(`${id}[aplspawn11]`)), true, id);
    assert.equal(u.select({ id: "x", kind: id, scope: "aplspawn11", family: "container", kept: true }), true);
    assert.equal(u.select(entry(`${id}[aplspawn10]`)), false, `${id} of another container`);
  }
  for (const id of [
    "host.inotify",
    "lab.claim",
    "lab.share",
    "lab.sshkey",
    "lab.inventory",
    "image.loop",
    "net.bridge",
  ])
    assert.equal(u.select(entry(id)), false, id);
  assert.equal(u.lane?.(entry("container.nspawn[aplspawn11]")), "aplspawn11");
  // Two names: both undone (side by side), both made again.
  const two = reset(c, { only: ["aplspawn10", "aplspawn12"] });
  assert.equal(undos(two.steps)[0]?.select(entry("container.upper[aplspawn12]")), true);
  assert.deepEqual(
    listTaskIds(two.steps).filter((id) => id.startsWith("container.nspawn")),
    ["container.nspawn[aplspawn10]", "container.nspawn[aplspawn12]"],
  );
  // No names: a usage error (every container's state would go), as is a name the lab does not have.
  assert.throws(
    () => reset(c, {}),
    /reset needs --only NAME.*containers: aplspawn10, aplspawn11, aplspawn12/,
  );
  assert.throws(() => reset(c, { only: [] }), /reset needs --only/);
  assert.throws(() => reset(c, { only: ["nope"] }), /no container named nope.*containers: aplspawn10/);
  assert.deepEqual(workflows.reset?.options, ["only", "concurrency", "owner", "ansibleUser"]);
  const registry = taskRegistry();
  for (const s of flat(wf.steps)) if (s.type === "task") assert.ok(registry.has(s.def.kind), s.def.kind);
});

test("a container's task steps journal the container's name as their scope; the lab's have none", () => {
  const c = parseConfig("lab: t\n", "t.yaml");
  const flat = (steps: readonly Step[]): Step[] =>
    steps.flatMap((x) => (x.type === "group" ? flat(x.steps) : [x]));
  const byId = new Map(flat(up(c, {}).steps).map((x) => [x.id, x]));
  const nspawn = byId.get("container.nspawn[aplspawn10]");
  assert.equal(nspawn?.type === "task" ? nspawn.scope : "missing", "aplspawn10");
  const key = byId.get("lab.sshkey");
  assert.equal(key?.type === "task" ? key.scope : "missing", undefined);
});

test("journal entries carry their scope, family and kept flag; older entries are read from id and kind", () => {
  const legacy = ["container.upper"];
  // As journaled now: the data decides, whatever the id says.
  assert.equal(
    entryScope({ id: "x", kind: "container.overlay", scope: "a-b10", family: "container" }),
    "a-b10",
  );
  assert.equal(
    entryScope({ id: "container.overlay[zz]", kind: "container.overlay", family: "container" }),
    undefined,
  );
  assert.equal(
    entryKept({ id: "x", kind: "container.upper", family: "container", kept: false }, legacy),
    false,
  );
  assert.equal(entryKept({ id: "x", kind: "other.kind", family: "other", kept: true }, legacy), true);
  // Journals written before: the container's name in the id, kept by kind.
  assert.equal(entryScope({ id: "container.overlay[a-b10]", kind: "container.overlay" }), "a-b10");
  assert.equal(entryScope({ id: "lab.inventory", kind: "lab.inventory" }), undefined);
  assert.equal(entryKept({ id: "container.upper[a]", kind: "container.upper" }, legacy), true);
  assert.equal(entryKept({ id: "lab.inventory", kind: "lab.inventory" }, legacy), false);
});

test("cleanup removes what is left of the lab but its network and image, then its unjournaled inventory and kept logs", () => {
  const c = cfg();
  const wf = cleanup(c, {});
  assert.deepEqual(listTaskIds(wf.steps), [
    "lab.idle",
    "cleanup.state",
    "lab.inventory-gone",
    "lab.logs-gone",
    "image.packages-purge",
  ]);
  const u = undos(wf.steps)[0]!;
  for (const id of [
    "container.upper[x10]",
    "container.dirs[x10]",
    "lab.sshkey",
    "lab.inventory",
    "host.inotify",
  ])
    assert.equal(u.select(entry(id)), true, id);
  for (const id of ["net.bridge", "net.forwarding", "image.loop", "image.download"])
    assert.equal(u.select(entry(id)), false, id);
  const registry = taskRegistry();
  for (const s of flat(wf.steps)) if (s.type === "task") assert.ok(registry.has(s.def.kind), s.def.kind);
  assert.equal(
    listTaskIds(down(c, {}).steps).at(-1),
    "lab.inventory-gone",
    "a plain down keeps the kept logs",
  );
  assert.ok(
    listTaskIds(down(c, { purge: true }).steps).includes("lab.logs-gone"),
    "down --purge deletes them",
  );
});

/** The CLI's io for a run in this process: its output kept in `out`, an exit thrown. */
const cliIo = (out: string[]) => ({
  host: realHost(),
  out: (s: string) => out.push(s),
  err: (s: string) => out.push(s),
  isTTY: false,
  env: {},
  exit: (code: number): never => {
    throw new Error(`exit ${code}`);
  },
});

test("inventory command: INI and YAML that real ansible-inventory reads, pinned host keys, no extra flags", () =>
  withTempDir(async (d) => {
    const config = join(d.path, "lab.yaml");
    await writeFile(config, `workdir: ${d.path}/w\nlab: inv\ncontainers: {count: 2, user: ann}\n`);
    const out: string[] = [];
    const io = cliIo(out);
    for (const format of ["ini", "yaml"]) {
      const file = join(d.path, `inventory.${format}`);
      assert.equal(
        await main(["-c", config, "inventory", "--format", format, "--output", file], io),
        0,
        out.join(""),
      );
      const text = await readFile(file, "utf8");
      if (format === "yaml") assert.equal(Object.keys(parse(text).all.children.aplspawned.hosts).length, 2);
      const inv = await execa("ansible-inventory", ["-i", file, "--list"], { reject: false });
      if (inv.exitCode !== 0 && /ENOENT/.test(String(inv.message))) continue; // ansible not installed
      assert.equal(inv.exitCode, 0, inv.stderr);
      const meta = JSON.parse(inv.stdout)._meta.hostvars as Record<string, Record<string, string>>;
      const h = meta.aplspawn11!;
      assert.equal(h.ansible_host, "10.10.12.11");
      assert.equal(h.ansible_user, "ann");
      assert.equal(h.ansible_pipelining, "true");
      assert.equal(h.ansible_ssh_private_key_file, `${d.path}/w/inv/id_ed25519`);
      assert.equal(
        h.ansible_ssh_common_args,
        `-o UserKnownHostsFile=${d.path}/w/inv/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes`,
      );
      // Short, whatever the workdir: Ansible adds 11 bytes and ssh 17 to it (107 at most).
      assert.match(h.ansible_control_path_dir!, /^\/run\/aplspawn-cp-[0-9a-f]{12}$/);
      assert.equal(h.ansible_control_path_dir, controlPathDir(`${d.path}/w/inv`));
      assert.notEqual(controlPathDir(`${d.path}/w/inv`), controlPathDir(`${d.path}/w/other`));
    }
    assert.match(
      renderInventory({
        format: "ini",
        group: "g",
        hosts: [{ name: "h", ip: "1.2.3.4" }],
        user: "u",
        key: "/k",
        knownHosts: "/a b/kh",
        controlPathDir: "/cp",
      }),
      /ansible_ssh_common_args="-o 'UserKnownHostsFile=\/a b\/kh' /,
    );
  }));

test("the inventory's Ansible defaults (pipelining, the lab's Python) are the group's: the user's group_vars override them, as Ansible's docs say; a lab whose images list their packages leaves Python to discovery", () =>
  withTempDir(async (d) => {
    const config = join(d.path, "lab.yaml");
    const inventory = async (format: string, yaml: string) => {
      await writeFile(config, `workdir: ${d.path}/w\nlab: inv\ncontainers: {count: 1}\n${yaml}`);
      const file = join(d.path, `inventory.${format}`);
      assert.equal(
        await main(["-c", config, "inventory", "--format", format, "--output", file], cliIo([])),
        0,
      );
      const r = await execa("ansible-inventory", ["-i", file, "--host", "aplspawn10"], { reject: false });
      if (r.exitCode !== 0 && /ENOENT/.test(String(r.message))) return undefined; // ansible not installed
      assert.equal(r.exitCode, 0, r.stderr);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    for (const format of ["ini", "yaml"]) {
      const h = await inventory(format, "");
      if (!h) return;
      assert.equal(h.ansible_pipelining, "true", format);
      assert.equal(h.ansible_python_interpreter, "/usr/bin/python3", format);
      // The pinned host key stays the host's own: no group_vars can turn it off.
      assert.equal(h.ansible_host_key_checking, "true", format);
      const listed = await inventory(format, "image: {packages: [openssh-server]}\n");
      assert.equal(listed?.ansible_python_interpreter, undefined, `${format}: packages listed`);
      assert.equal(listed?.ansible_pipelining, "true", format);
    }
    // The user's group_vars beside the inventory (an image with requiretty, a venv's Python).
    await mkdir(join(d.path, "group_vars"));
    await writeFile(
      join(d.path, "group_vars", "all.yml"),
      "ansible_pipelining: false\nansible_python_interpreter: /opt/venv/bin/python\nansible_host_key_checking: false\n",
    );
    for (const format of ["ini", "yaml"]) {
      const h = await inventory(format, "");
      assert.equal(h?.ansible_pipelining, false, format);
      assert.equal(h?.ansible_python_interpreter, "/opt/venv/bin/python", format);
      assert.equal(h?.ansible_host_key_checking, "true", `${format}: a host variable outranks group_vars`);
    }
  }));

test("user id ranges: the first range no host user, group, subordinate range or claim uses; one per upper layer, kept while it exists", async () => {
  const h = recordingHost();
  for (const d of ["/etc", "/run", "/l/a/upper", "/l/b/upper", "/l/c/upper"]) await h.fs.mkdir(d);
  // 0x80000 holds a host user's uid; 0x90000 is someone's subordinate range.
  await h.fs.writeFile("/etc/passwd", "root:x:0:0::/root:/bin/sh\nodd:x:524300:100::/:/bin/sh\n");
  await h.fs.writeFile("/etc/subuid", "alice:589824:65536\n");
  const a = await claimRange(h, "/l/a/upper");
  assert.equal(a, 0xa0000);
  assert.equal(await claimRange(h, "/l/b/upper"), 0xb0000);
  assert.equal(await claimRange(h, "/l/a/upper"), a, "an upper layer keeps its range");
  assert.equal(await rangeOf(h, "/l/a/upper"), a);
  // The upper layer removed: its range goes back to the pool, to the next layer that asks.
  await h.fs.rm("/l/a/upper");
  await releaseRange(h, "/l/a/upper");
  assert.equal(await rangeOf(h, "/l/a/upper"), undefined);
  assert.equal(await claimRange(h, "/l/c/upper"), a);
});
