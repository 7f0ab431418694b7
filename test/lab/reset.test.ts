// `run reset --only NAME`, for real: the named container comes back as the image made it (its
// changes gone, a new host key pinned in place of the old one, started, reached over ssh), the other
// containers keep running untouched (same leader, same start time), the journal stays the lab's
// (a second up changes nothing; down leaves nothing); a container that was stopped comes back fresh;
// a reset failing midway rolls back what it made and up brings the container back; a stopped
// container's file system goes at once, though containers started after it hold copies of its mounts. With
// containers.privateUsers the container's id range claim is given back and taken again: one per
// upper layer, none after a purge.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sshBatchArgs } from "../../src/lab/ssh.js";
import { summary, taskEvents } from "../support/json-events.js";
import { assertNoResidue, claimsUnder, type Lab, labTest, nspawnPids, ok, upperOf } from "../support/lab.js";

/** Each running container's leader: name → "PID@start time" (/proc/PID/stat field 22). */
async function leaders(lab: Lab): Promise<Map<string, string>> {
  // pids exits 1 while a container is not running, and still lists the others.
  const states = JSON.parse((await lab.cli(["--json", "pids"])).stdout) as {
    name: string;
    leaderPid?: number;
  }[];
  const out = new Map<string, string>();
  for (const s of states) {
    if (s.leaderPid === undefined) continue;
    const stat = await readFile(`/proc/${s.leaderPid}/stat`, "utf8");
    out.set(s.name, `${s.leaderPid}@${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`);
  }
  return out;
}

/** The lab's known_hosts: container name → its pinned line. */
async function pins(lab: Lab): Promise<Map<string, string>> {
  const text = await readFile(join(lab.workdir, lab.name, "known_hosts"), "utf8").catch(() => "");
  return new Map(
    text
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.split(",")[0] ?? "", l]),
  );
}

// The upper layer is on the container's own file system, mounted in the lab's namespace only.
const inNs = async (lab: Lab, path: string) => (await lab.ns.run("test", ["-e", path])).exitCode === 0;
const uidInNs = async (lab: Lab, path: string) =>
  Number((await lab.ns.run("stat", ["-c", "%u", path])).stdout.trim());

labTest(
  "run reset --only A: A as the image made it, a new host key pinned in place of the old, ssh works; B and C keep running untouched; a stopped container comes back fresh; a failed reset rolls back; down leaves nothing",
  { name: "rset", subnet: 57 },
  async (lab) => {
    const [a, b, c] = ["rset-10", "rset-11", "rset-12"] as const;
    ok(await lab.cli(["run", "up"]), "run up");
    ok(await lab.cli(["exec", a, "--", "sh", "-c", "echo changed > /var/tmp/reset-marker"]), "exec");
    assert.ok(
      await inNs(lab, join(upperOf(lab, a), "var/tmp/reset-marker")),
      "the change is in A's upper layer",
    );
    const before = await leaders(lab);
    const pinsBefore = await pins(lab);
    assert.equal(before.size, 3);

    const r = ok(await lab.cli(["--json", "run", "reset", "--only", a]), "run reset");
    assert.equal(summary(r).ok, true);
    const changed = taskEvents(r)
      .filter((e) => e.state === "changed")
      .map((e) => e.id);
    for (const id of ["reset.containers", `container.upper[${a}]`, `container.hostkeys[${a}]`])
      assert.ok(changed.includes(id), `${id} changed: ${changed}`);
    assert.deepEqual(
      taskEvents(r).filter((e) => e.id.includes(b) || e.id.includes(c)),
      [],
      "no task of B or C",
    );

    // A: its change gone, a new leader, a new host key pinned and served, the old one refused.
    assert.equal(await inNs(lab, join(upperOf(lab, a), "var/tmp/reset-marker")), false, "A's change is gone");
    ok(await lab.cli(["exec", a, "--", "test", "!", "-e", "/var/tmp/reset-marker"]), "no marker in A");
    const after = await leaders(lab);
    assert.notEqual(after.get(a), before.get(a), "A was restarted");
    const pinsAfter = await pins(lab);
    const [oldPin, newPin] = [pinsBefore.get(a), pinsAfter.get(a)];
    assert.ok(oldPin && newPin && oldPin !== newPin, `A's pin changed: ${oldPin} → ${newPin}`);
    const oldKey = oldPin.split(" ")[2] ?? "";
    assert.ok(oldKey.length > 40);
    const knownHosts = await readFile(join(lab.workdir, lab.name, "known_hosts"), "utf8");
    assert.equal(knownHosts.includes(oldKey), false, "the old host key is no longer pinned");
    assert.equal(knownHosts.trim().split("\n").length, 3, "one pin per container");
    assert.equal(
      (await readFile(join(lab.workdir, lab.name, "containers", a, "ssh_host_ed25519_key.pub"), "utf8"))
        .trim()
        .split(" ")[1],
      newPin.split(" ")[2],
    );
    assert.equal(ok(await lab.cli(["ssh", a, "--", "hostname"]), "ssh A").stdout, a);
    const oldKnown = join(lab.dir, "old_known_hosts");
    await writeFile(oldKnown, `${oldPin}\n`);
    const withOld = await lab.ns.run(
      "ssh",
      sshBatchArgs(
        {
          ip: "10.10.57.10",
          user: "test",
          key: join(lab.workdir, lab.name, "id_ed25519"),
          knownHosts: oldKnown,
        },
        ["true"],
      ),
    );
    assert.equal(withOld.exitCode, 255, "ssh with the old pin is refused");
    assert.match(withOld.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    // B and C: the same processes, the same pins.
    for (const n of [b, c]) {
      assert.equal(after.get(n), before.get(n), `${n} kept running untouched`);
      assert.equal(pinsAfter.get(n), pinsBefore.get(n), `${n}'s pin is unchanged`);
    }
    ok(await lab.cli(["status"]), "status after reset");
    // The journal holds the lab as up makes it: a second up has nothing to do.
    const again = ok(await lab.cli(["--json", "run", "up"]), "up after reset");
    assert.equal(summary(again).changed, 0, "up after reset changes nothing");

    // A container that is not up: reset brings it up, fresh.
    // A started again after B's mounts were made: systemd-nspawn gave it a copy of each. Stopping
    // B still lets go of its file system and loop device at once (tasks/container/share.ts);
    // under the test's private / they used to stay with A's copies, and stop waited 30 s.
    const stopB = ok(await lab.cli(["run", "stop", "--only", b]), "stop B");
    assert.deepEqual(await nspawnPids(join(lab.machinesDir, b)), [], "B stopped");
    assert.doesNotMatch(
      `${stopB.stdout}${stopB.stderr}`,
      /released by the kernel/,
      "stop B waited for its loop device",
    );
    const diskB = join(lab.workdir, lab.name, "containers", b, "disk.img");
    assert.equal((await lab.ns.run("losetup", ["-j", diskB])).stdout, "", "B's disk is on no loop device");
    ok(await lab.cli(["run", "reset", "--only", b]), "reset of a stopped B");
    const afterB = await leaders(lab);
    assert.ok(afterB.has(b) && afterB.get(b) !== before.get(b), "B runs again, a new leader");
    assert.notEqual((await pins(lab)).get(b), pinsBefore.get(b), "B has a new host key");
    assert.equal(afterB.get(c), before.get(c), "C kept running untouched");
    assert.equal(afterB.get(a), after.get(a), "A kept running untouched");
    ok(await lab.cli(["status"]), "status after reset of B");

    // A failure midway: what this reset made is rolled back (A's old state is gone already), the
    // others run on, and up brings A back.
    const failed = await lab.cli(["run", "reset", "--only", a], {
      APLSPAWN_FAIL_AFTER: `container.user[${a}]`,
    });
    assert.equal(failed.exitCode, 1, `${failed.stdout}\n${failed.stderr}`);
    assert.match(failed.stderr, new RegExp(`container\\.user\\[${a}\\]`));
    assert.deepEqual(await nspawnPids(join(lab.machinesDir, a)), [], "A is not running");
    assert.equal(existsSync(join(lab.workdir, lab.name, "containers", a)), false, "A's state rolled back");
    assert.equal((await pins(lab)).has(a), false, "A's pin rolled back");
    const afterFail = await leaders(lab);
    assert.equal(afterFail.get(c), before.get(c), "C kept running through the failed reset");
    assert.equal(afterFail.get(b), afterB.get(b), "B kept running through the failed reset");
    ok(await lab.cli(["run", "up"]), "up after the failed reset");
    ok(await lab.cli(["status"]), "status after up");

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after reset and down");
  },
);

labTest(
  "run reset with containers.privateUsers: the container's id range is given back with its upper layer and claimed again for the new one; a purge leaves no claim",
  { name: "rsu", subnet: 58, containers: { count: 2, privateUsers: true } },
  async (lab) => {
    const [a, b] = ["rsu-10", "rsu-11"];
    ok(await lab.cli(["run", "up"]), "run up");
    ok(await lab.cli(["exec", a, "--", "touch", "/root/by-root"]), "exec");
    const before = await claimsUnder(lab.dir);
    assert.equal(before.size, 2);
    const baseOf = (claims: Map<number, string>, name: string) =>
      [...claims].find(([, u]) => u === upperOf(lab, name))?.[0];
    ok(await lab.cli(["run", "reset", "--only", a]), "run reset");
    const after = await claimsUnder(lab.dir);
    assert.equal(after.size, 2, `one claim per upper layer: ${[...after]}`);
    const base = baseOf(after, a);
    assert.ok(base !== undefined, "A's new upper layer has a range");
    assert.equal(baseOf(after, b), baseOf(before, b), "B keeps its range");
    assert.equal(await inNs(lab, join(upperOf(lab, a), "root/by-root")), false, "A's change is gone");
    assert.equal(await uidInNs(lab, upperOf(lab, a)), base, "the new layer is the range's");
    const leader = (await leaders(lab)).get(a)?.split("@")[0];
    const [, host] = (await readFile(`/proc/${leader}/uid_map`, "utf8")).trim().split(/\s+/);
    assert.equal(Number(host), base, "A runs in its claimed range");
    ok(await lab.cli(["ssh", a, "--", "sudo", "-n", "true"]), "ssh A");
    ok(await lab.cli(["status"]), "status");
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    assert.deepEqual(await claimsUnder(lab.dir), new Map(), "ranges left in the registry");
    await assertNoResidue(lab, "after reset and down --purge");
  },
);
