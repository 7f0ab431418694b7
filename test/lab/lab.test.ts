// The whole lab, for real, as root, each test in its own namespace: up → status, pids, ssh, exec,
// real Ansible → up again changes nothing → down leaves nothing; script mode; a killed container;
// stop/spawn --only; down with the config deleted; run up killed while containers start. (A fault
// after each task of up: test/reliability/faults.test.ts.)

import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { stringify } from "yaml";
import { controlPathDir } from "../../src/lab/inventory.js";
import { startServer } from "../support/image.js";
import { summary, taskEvents } from "../support/json-events.js";
import { assertNoResidue, inotify, killNspawns, labTest, nspawnPids, ok } from "../support/lab.js";
import { waitFor } from "../support/wait.js";

const alive = async (pid: number) =>
  !/\) [ZX] /.test(await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ") X "));

interface StatusJson {
  ok: boolean;
  checks: { name: string; target: string; ok: boolean; detail: string }[];
}

labTest(
  "run up (image over loopback HTTP): status, pids, ssh, exec and real ansible reach 3 containers; up again changes nothing; down leaves nothing",
  { name: "l5a", subnet: 31 },
  async (lab) => {
    const limitBefore = await inotify();
    // The image `image build` made, served inside the namespace: up downloads and verifies it.
    const server = await startServer(lab.ns, dirname(lab.image.path));
    try {
      await lab.writeConfig({
        image: { url: server.url(basename(lab.image.path)), sha256: lab.image.sha256 },
      });
      const up = ok(await lab.cli(["--json", "run", "up"]), "run up");
      assert.equal(summary(up).ok, true);
      assert.ok(taskEvents(up).some((e) => e.id === "image.download" && e.state === "changed"));
    } finally {
      // Stopped now: later runs must use the verified download (a cache), not the network.
      await server.stop();
    }
    const downloaded = join(lab.workdir, "images", basename(lab.image.path));
    assert.ok((await inotify()) >= 128 + 3 * 40, "the inotify limit was raised for 3 containers");

    const st = await lab.cli(["--json", "status"]);
    const s = JSON.parse(st.stdout) as StatusJson;
    assert.equal(st.exitCode, 0, st.stdout);
    assert.equal(s.ok, true);
    for (const n of ["l5a-10", "l5a-11", "l5a-12"])
      assert.equal(s.checks.filter((c) => c.target === n && c.ok).length, 6, `6 passing checks for ${n}`);
    // The first status left an ssh master per container; the second runs over them.
    const cp = controlPathDir(join(lab.workdir, "l5a"));
    const masters = (await readdir(cp)).filter((f) => f.startsWith("st-"));
    assert.equal(masters.length, 3, `one status master per container: ${masters}`);
    for (const m of masters)
      ok(await lab.ns.run("ssh", ["-o", `ControlPath=${cp}/${m}`, "-O", "check", "x"]), `master ${m}`);
    const table = ok(await lab.cli(["status"]), "status").stdout;
    assert.match(table, /^‣ \[ INFO \] Checking container l5a-10, ip 10\.10\.31\.10\/26$/m);
    assert.match(table, /^‣ \[ OK \] Checking ssh connection to 10\.10\.31\.12$/m);
    assert.deepEqual((await readdir(cp)).filter((f) => f.startsWith("st-")).sort(), masters.sort());

    const pids = ok(await lab.cli(["pids"]), "pids")
      .stdout.trim()
      .split("\n")
      .map(Number);
    assert.equal(pids.length, 3);
    assert.equal(new Set(pids).size, 3);
    for (const pid of pids) assert.ok(await alive(pid), `leader ${pid} runs`);
    // Each container in a cgroup of its own (shared ones make their systemds remove each other's units).
    const cgs = await Promise.all(
      pids.map(async (pid) => (await readFile(`/proc/${pid}/cgroup`, "utf8")).match(/^0::(.*)$/m)?.[1]),
    );
    for (const [i, cg] of cgs.entries()) assert.match(cg ?? "", new RegExp(`^/aplspawn/l5a-1${i}/`));
    assert.deepEqual(ok(await lab.cli(["names"]), "names").stdout, "l5a-10\nl5a-11\nl5a-12");

    assert.equal(ok(await lab.cli(["ssh", "l5a-10", "--", "hostname"]), "ssh").stdout, "l5a-10");
    assert.equal(
      ok(await lab.cli(["ssh", "l5a-11", "--", "sudo", "-n", "id", "-u"]), "ssh sudo").stdout,
      "0",
    );
    assert.equal(ok(await lab.cli(["exec", "l5a-12", "--", "hostname"]), "exec").stdout, "l5a-12");
    const known = await readFile(join(lab.workdir, "l5a", "known_hosts"), "utf8");
    assert.equal(known.trim().split("\n").length, 3, "one pinned host key per container");

    // Real Ansible, nothing but the generated inventory.
    const a = await lab.ns.run("ansible", ["-i", lab.inventory, "-m", "ping", "all"], { cwd: lab.dir });
    assert.equal(a.exitCode, 0, `${a.stdout}\n${a.stderr}`);
    assert.equal(a.stdout.match(/ \| SUCCESS =>/g)?.length, 3, a.stdout);
    // Its modules are pipelined: no module file is copied over (no PUT), become included.
    const b = await lab.ns.run(
      "ansible",
      ["-vvv", "-i", lab.inventory, "-b", "-m", "command", "-a", "id -u", "all"],
      {
        cwd: lab.dir,
      },
    );
    assert.equal(b.exitCode, 0, `${b.stdout}\n${b.stderr}`);
    assert.equal(b.stdout.match(/ \| CHANGED \| rc=0 >>\n0$/gm)?.length, 3, b.stdout);
    assert.doesNotMatch(b.stdout, /^<[^>]+> PUT /m, "a module was copied over: not pipelined");
    // The inventory names the containers' Python: Ansible discovers none (a shell and a Python run
    // less per container and play).
    assert.doesNotMatch(`${a.stdout}\n${b.stdout}`, /discovered_interpreter_python|interpreter discovery/);

    const again = ok(await lab.cli(["--json", "run", "up"]), "second run up");
    assert.equal(summary(again).changed, 0, "a second up changes nothing");
    assert.deepEqual(
      taskEvents(again).filter((e) => e.state === "changed"),
      [],
    );

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after run down");
    assert.equal(await inotify(), limitBefore, "inotify limit restored");
    assert.equal(
      await lab.ns.run("test", ["-e", lab.inventory]).then((r) => r.exitCode),
      1,
      "inventory removed",
    );
    // The lab's state stays for the next up (upper layers on the containers' own file systems, keys);
    // --purge removes it.
    const labDir = join(lab.workdir, "l5a");
    assert.deepEqual((await readdir(join(labDir, "containers"))).sort(), ["l5a-10", "l5a-11", "l5a-12"]);
    assert.ok((await readdir(join(labDir, "containers", "l5a-10"))).includes("disk.img"));
    assert.ok(await stat(downloaded).catch(() => undefined), "plain down keeps the downloaded image");
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    assert.deepEqual(
      (await readdir(labDir)).filter((f) => !f.startsWith("journal")),
      [],
    );
    assert.equal(await stat(downloaded).catch(() => undefined), undefined, "--purge deletes the download");
    assert.deepEqual(await readdir(lab.machinesDir), []);
  },
);

labTest(
  "init: script brings up a container reachable over ssh; after down, up again finds its upper layer and keys",
  { name: "l5b", subnet: 32, containers: { count: 1, init: "script" } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    assert.equal(ok(await lab.cli(["ssh", "l5b-10", "--", "hostname"]), "ssh").stdout, "l5b-10");
    const s = JSON.parse((await lab.cli(["--json", "status"])).stdout) as StatusJson;
    assert.equal(s.ok, true, JSON.stringify(s.checks.filter((c) => !c.ok)));
    const leader = s.checks.find((c) => c.name === "Checking leader process");
    assert.match(leader?.detail ?? "", /sshd/);
    // Something the container itself wrote, in its upper layer: it outlives down, --purge removes it.
    ok(await lab.cli(["ssh", "l5b-10", "--", "touch", "kept"]), "ssh touch");
    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after run down");

    const again = ok(await lab.cli(["--json", "run", "up"]), "run up after down");
    const changed = taskEvents(again)
      .filter((e) => e.state === "changed")
      .map((e) => e.id);
    for (const kept of ["container.upper[l5b-10]", "container.hostkeys[l5b-10]", "lab.sshkey"])
      assert.ok(!changed.includes(kept), `${kept} was kept, not made again`);
    ok(await lab.cli(["ssh", "l5b-10", "--", "test", "-e", "kept"]), "the file is still there");
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    await assertNoResidue(lab, "after run down --purge");
    assert.deepEqual(await readdir(join(lab.workdir, "l5b", "containers")).catch(() => []), []);
  },
);

labTest(
  "a container killed by hand: status names it, up restarts only it; stop/spawn --only act on one",
  { name: "l5c", subnet: 33, containers: { count: 2 } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const [, victim] = ok(await lab.cli(["pids"]), "pids")
      .stdout.trim()
      .split("\n")
      .map(Number);
    assert.ok(victim);
    process.kill(victim, "SIGKILL");
    await waitFor(async () => (await nspawnPids(join(lab.machinesDir, "l5c-11"))).length === 0, 10_000, 100);

    const st = await lab.cli(["--json", "status"]);
    assert.equal(st.exitCode, 1);
    const failing = (JSON.parse(st.stdout) as StatusJson).checks.filter((c) => !c.ok);
    assert.ok(failing.length > 0);
    assert.deepEqual([...new Set(failing.map((c) => c.target))], ["l5c-11"]);
    assert.equal((await lab.cli(["pids"])).exitCode, 1, "pids fails while a container is down");

    const up = ok(await lab.cli(["--json", "run", "up"]), "run up after the kill");
    const changed = taskEvents(up)
      .filter((e) => e.state === "changed")
      .map((e) => e.id);
    // Only the killed container starts again (its ready check may already hold when it runs),
    // and gets its address in its new network namespace.
    assert.equal(changed[0], "container.nspawn[l5c-11]", changed.join(", "));
    assert.ok(changed.includes("container.address[l5c-11]"), changed.join(", "));
    assert.ok(
      changed.every((id) =>
        ["container.nspawn[l5c-11]", "container.address[l5c-11]", "container.ready[l5c-11]"].includes(id),
      ),
      changed.join(", "),
    );
    ok(await lab.cli(["status"]), "status after the restart");

    ok(await lab.cli(["run", "stop", "--only", "l5c-10"]), "stop --only");
    const after = JSON.parse((await lab.cli(["--json", "status"])).stdout) as StatusJson;
    assert.deepEqual([...new Set(after.checks.filter((c) => !c.ok).map((c) => c.target))], ["l5c-10"]);
    ok(await lab.cli(["run", "spawn", "--only", "l5c-10"]), "spawn --only");
    ok(await lab.cli(["status"]), "status after spawn --only");
    assert.equal(
      (await lab.cli(["run", "stop", "--only", "nope"])).exitCode,
      2,
      "unknown name is a usage error",
    );

    // A smaller count removes the extra container, and only it.
    await lab.writeConfig({ containers: { count: 1 } });
    const smaller = ok(await lab.cli(["--json", "run", "up"]), "up with count 1");
    const undone = taskEvents(smaller)
      .filter((e) => e.state === "rolled-back")
      .map((e) => e.id);
    assert.ok(undone.length > 0 && undone.every((id) => id.endsWith("[l5c-11]")), undone.join(", "));
    assert.equal((await nspawnPids(join(lab.machinesDir, "l5c-11"))).length, 0);
    assert.equal((await nspawnPids(join(lab.machinesDir, "l5c-10"))).length, 1);
    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after run down");
  },
);

labTest(
  "run down with the config file deleted undoes everything from the journal",
  { name: "l5d", subnet: 34 },
  async (lab) => {
    // The default config's workdir and machinesDir, private to this namespace: a tmpfs over /var/lib.
    ok(await lab.ns.run("mount", ["-t", "tmpfs", "-o", "mode=0755,size=256m", "l5d", "/var/lib"]), "tmpfs");
    ok(await lab.ns.run("mkdir", ["-p", "/var/lib/aplspawn"]), "mkdir");
    // As systemd-container makes it: root's alone (aplspawn refuses a machinesDir others can reach).
    ok(await lab.ns.run("mkdir", ["-m", "0700", "/var/lib/machines"]), "mkdir machines");
    // The home of the account Ansible runs as (scripts/install.sh makes it there), under the tmpfs too.
    if ((await lab.ns.run("id", ["-u", "aplspawn"])).exitCode === 0)
      ok(
        await lab.ns.run("install", [
          "-d",
          "-m",
          "0700",
          "-o",
          "aplspawn",
          "-g",
          "aplspawn",
          "/var/lib/aplspawn-ansible",
        ]),
        "the account's home",
      );
    lab.before = await lab.ns.snapshot();
    const cfg = join(lab.dir, "lab.yaml");
    const image = `file://${lab.image.path}`;
    await writeFile(
      cfg,
      stringify({
        network: { bridge: "br-l5d", address: "10.10.34.1/26" },
        image: { url: image },
        containers: { count: 2, prefix: "l5d-", ipRange: ["10.10.34.10", "10.10.34.60"] },
        inventory: { file: join(lab.dir, "inv.txt") },
      }),
    );
    try {
      ok(await lab.ns.cli(["-c", cfg, "run", "up"], { cwd: lab.dir }), "run up");
      assert.equal((await nspawnPids("/var/lib/machines/l5d-1")).length, 2);
      await rm(cfg);
      const empty = join(lab.dir, "empty");
      await mkdir(empty);
      // No -c and no ./aplspawn.yaml: the packaged default config, which names none of the lab's things.
      const down = ok(await lab.ns.cli(["run", "down"], { cwd: empty }), "run down without the config");
      assert.match(down.stdout, /Stopping container l5d-11/);
      await assertNoResidue(lab, "after run down without the config");
      assert.equal((await nspawnPids("/var/lib/machines/l5d-1")).length, 0);
    } finally {
      // These containers live outside the test's temp dir: the fixture's cleanup would not find them.
      await killNspawns("/var/lib/machines/l5d-");
    }
  },
);

labTest(
  "run up killed (SIGKILL) while containers start: run down finds them on the live host and removes everything",
  { name: "l5f", subnet: 36, containers: { count: 3 } },
  async (lab) => {
    const child = lab.spawnCli(["run", "up"]);
    // Read and dropped: a full pipe would stall the run.
    child.stdout?.resume();
    child.stderr?.resume();
    try {
      // Kill the CLI as soon as a container's nspawn exists: its journal entry may still say "running".
      await waitFor(async () => (await nspawnPids(lab.dir)).length >= 2, 30_000, 50);
      assert.ok((await nspawnPids(lab.dir)).length > 0, "containers were starting");
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode ? r(undefined) : child.once("exit", r),
      );
    }
    const down = ok(await lab.cli(["run", "down"]), "run down after the crash");
    assert.match(down.stdout, /Stopping container l5f-1\d/);
    await assertNoResidue(lab, "after run down following a crash");
    assert.equal(await inotify(), lab.inotifyBefore, "inotify limit restored");
  },
);
