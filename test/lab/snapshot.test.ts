// `aplspawn snapshot`, for real: save keeps the containers' state (and leaves them running), a
// change made after it is gone after restore and the saved state is back, reached over ssh with the
// same pinned host key; --only restores one container and leaves the other's changes; a snapshot
// saved on top of a restored one stands alone (its source deleted, it still restores); refusals
// (bad names, a taken name, a container the snapshot lacks, a snapshot of another image) change
// nothing; a save failing midway leaves no part of its snapshot; links the container planted in its
// upper layer are copied as links, never followed; snapshots outlive `run down`, and `run cleanup`
// and `run down --purge` remove them, leaving nothing.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { lstat, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { summary } from "../support/json-events.js";
import { assertNoResidue, type Lab, labTest, ok } from "../support/lab.js";

interface Listed {
  name: string;
  containers: string[];
  bytes: number;
  time: string;
}

const listed = async (lab: Lab): Promise<Listed[]> =>
  JSON.parse(ok(await lab.cli(["--json", "snapshot", "list"]), "snapshot list").stdout) as Listed[];

/** A file's text in a running container, as root. */
const cat = async (lab: Lab, name: string, path: string) =>
  ok(await lab.cli(["exec", name, "--", "cat", path]), `cat ${path} in ${name}`).stdout.trim();

const sh = async (lab: Lab, name: string, script: string) =>
  ok(await lab.cli(["exec", name, "--", "sh", "-c", script]), `${script} in ${name}`);

/** The leader of a running container (its PID and start time). */
async function leader(lab: Lab, name: string): Promise<string> {
  const states = JSON.parse((await lab.cli(["--json", "pids"])).stdout) as {
    name: string;
    leaderPid?: number;
  }[];
  const pid = states.find((s) => s.name === name)?.leaderPid;
  assert.ok(pid, `${name} runs`);
  const st = await readFile(`/proc/${pid}/stat`, "utf8");
  return `${pid}@${st.slice(st.lastIndexOf(")") + 2).split(" ")[19]}`;
}

labTest(
  "snapshot save, change, restore: the saved state is back and answers over ssh; --only; chains; refusals change nothing; planted links are not followed; down keeps snapshots, cleanup and down --purge leave nothing",
  { name: "snap", subnet: 71, containers: { count: 2 } },
  async (lab) => {
    const [a, b] = ["snap-10", "snap-11"] as const;
    const labDir = join(lab.workdir, lab.name);
    const snaps = join(labDir, "snapshots");
    ok(await lab.cli(["run", "up"]), "run up");
    const pins = await readFile(join(labDir, "known_hosts"), "utf8");

    // What the host must never read through: a file of its own, named by links in A's layer.
    const secret = join(lab.dir, "host-secret");
    await writeFile(secret, "HOST-SECRET-CONTENT\n", { mode: 0o600 });
    await sh(
      lab,
      a,
      `echo saved > /var/tmp/marker && ln -s ${secret} /var/tmp/evil && ln -s / /var/tmp/rootlink`,
    );
    await sh(lab, b, "echo b-saved > /var/tmp/marker");

    const saved = ok(await lab.cli(["--json", "snapshot", "save", "s1"]), "snapshot save s1");
    assert.equal(summary(saved).ok, true);
    const [s1] = await listed(lab);
    assert.ok(s1);
    assert.equal(s1.name, "s1");
    assert.deepEqual(s1.containers, [a, b]);
    assert.ok(
      s1.bytes > 0 && s1.bytes < 50_000_000,
      `s1 holds ${s1.bytes} bytes: the upper layers, nothing followed`,
    );
    assert.ok(!Number.isNaN(Date.parse(s1.time)));
    const human = ok(await lab.cli(["snapshot", "list"]), "snapshot list").stdout;
    assert.match(human, new RegExp(`NAME\\s+CONTAINERS\\s+SIZE\\s+TIME\\n.*s1\\s+${a},${b}\\s`));
    for (const d of [snaps, join(snaps, "s1")])
      assert.equal((await stat(d)).mode & 0o777, 0o700, `${d} is root's alone`);

    // The links were copied as links: the host's file and root were never read through them.
    const layer = join(snaps, "s1", a, "layers", "1");
    assert.ok((await lstat(join(layer, "var/tmp/evil"))).isSymbolicLink());
    assert.equal(await readlink(join(layer, "var/tmp/evil")), secret);
    assert.ok((await lstat(join(layer, "var/tmp/rootlink"))).isSymbolicLink());
    const grep = await lab.ns.run("grep", ["-rl", "HOST-SECRET-CONTENT", snaps]);
    assert.equal(grep.stdout, "", "the secret was not copied into the snapshot");
    assert.equal(await readFile(secret, "utf8"), "HOST-SECRET-CONTENT\n");

    // The containers run after a save.
    assert.equal(
      ok(await lab.cli(["ssh", a, "--", "cat", "/var/tmp/marker"]), "ssh A").stdout.trim(),
      "saved",
    );

    // Changes, then a restore of A alone: A's change is gone, B's stays.
    await sh(lab, a, "echo changed > /var/tmp/marker && touch /var/tmp/new && rm /etc/hostname");
    await sh(lab, b, "echo b-changed > /var/tmp/marker");
    const leaderB = await leader(lab, b);
    ok(await lab.cli(["snapshot", "restore", "s1", "--only", a]), "restore s1 --only A");
    assert.equal(await cat(lab, a, "/var/tmp/marker"), "saved");
    ok(await lab.cli(["exec", a, "--", "test", "!", "-e", "/var/tmp/new"]), "A's new file is gone");
    ok(await lab.cli(["exec", a, "--", "test", "-f", "/etc/hostname"]), "A's deleted file is back");
    assert.equal(ok(await lab.cli(["ssh", a, "--", "hostname"]), "ssh A after restore").stdout.trim(), a);
    assert.equal(await readFile(join(labDir, "known_hosts"), "utf8"), pins, "the same host keys stay pinned");
    assert.equal(await cat(lab, b, "/var/tmp/marker"), "b-changed", "B untouched");
    assert.equal(await leader(lab, b), leaderB, "B kept running");
    ok(await lab.cli(["status"]), "status after restore");
    assert.equal(
      summary(ok(await lab.cli(["--json", "run", "up"]), "up")).changed,
      0,
      "up after restore changes nothing",
    );

    // The whole snapshot: B back too.
    ok(await lab.cli(["snapshot", "restore", "s1"]), "restore s1");
    assert.equal(await cat(lab, b, "/var/tmp/marker"), "b-saved");
    assert.equal(await cat(lab, a, "/var/tmp/marker"), "saved");

    // A snapshot of a restored container holds the layers below it: s1 deleted, s2 restores.
    await sh(lab, a, "echo second > /var/tmp/second");
    ok(await lab.cli(["snapshot", "save", "s2", "--only", a]), "save s2 --only A");
    ok(await lab.cli(["snapshot", "delete", "s1"]), "delete s1");
    assert.deepEqual(
      (await listed(lab)).map((s) => [s.name, s.containers]),
      [["s2", [a]]],
    );
    assert.equal(existsSync(join(snaps, "s1")), false, "s1's directory is gone");
    assert.equal(
      await cat(lab, a, "/var/tmp/marker"),
      "saved",
      "A still runs on s1's layers after s1 is deleted",
    );
    await sh(lab, a, "rm /var/tmp/second /var/tmp/marker");
    ok(await lab.cli(["snapshot", "restore", "s2"]), "restore s2");
    assert.equal(await cat(lab, a, "/var/tmp/second"), "second");
    assert.equal(await cat(lab, a, "/var/tmp/marker"), "saved");

    // Refusals: exit 2, nothing stopped.
    const leaderA = await leader(lab, a);
    for (const [args, why] of [
      [["snapshot", "save", "../x"], /snapshot name/],
      [["snapshot", "save", "a/b"], /snapshot name/],
      [["snapshot", "save", "s2"], /exists/],
      [["snapshot", "restore", "nope"], /no snapshot named nope/],
      [["snapshot", "restore", "s2", "--only", b], /holds no container/],
      [["snapshot", "delete", "nope"], /no snapshot named nope/],
    ] as const) {
      const r = await lab.cli([...args]);
      assert.equal(r.exitCode, 2, `${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, why);
    }
    // A snapshot of another image is refused before anything is stopped.
    const meta = join(snaps, "s2", a, "meta.json");
    const text = await readFile(meta, "utf8");
    await writeFile(meta, text.replace(/"path": "[^"]*"/, '"path": "/var/lib/aplspawn/images/other.img"'));
    const other = await lab.cli(["snapshot", "restore", "s2"]);
    assert.equal(other.exitCode, 2, other.stderr);
    assert.match(other.stderr, /taken on the image \/var\/lib\/aplspawn\/images\/other\.img/);
    await writeFile(meta, text);
    assert.equal(await leader(lab, a), leaderA, "A kept running through the refusals");
    assert.equal(await cat(lab, a, "/var/tmp/second"), "second");

    // A save failing midway leaves no part of the snapshot; the containers stay stopped, up starts them.
    const failed = await lab.cli(["snapshot", "save", "s9"], {
      APLSPAWN_FAIL_AFTER: `snapshot.save[s9:${b}]`,
    });
    assert.equal(failed.exitCode, 1, `${failed.stdout}\n${failed.stderr}`);
    assert.equal(existsSync(join(snaps, "s9")), false, "the failed save's snapshot is rolled back");
    assert.deepEqual(
      (await listed(lab)).map((s) => s.name),
      ["s2"],
    );
    ok(await lab.cli(["run", "up"]), "up after the failed save");
    assert.equal(await cat(lab, a, "/var/tmp/second"), "second", "A is back on s2's layers");

    // Down keeps snapshots and the restored state; up brings A back on its layers.
    ok(await lab.cli(["run", "down"]), "run down");
    assert.deepEqual(
      (await listed(lab)).map((s) => s.name),
      ["s2"],
    );
    // A down lab's upper layers are on file systems not mounted: save says to bring it up.
    const downSave = await lab.cli(["snapshot", "save", "s4"]);
    assert.equal(downSave.exitCode, 2, `save of a down lab: ${downSave.stdout}\n${downSave.stderr}`);
    assert.match(downSave.stderr, /is not up \(its file system is not mounted\): `aplspawn run up` first/);
    assert.equal(existsSync(join(snaps, "s4")), false, "the refused save made a snapshot");
    ok(await lab.cli(["run", "up"]), "up again");
    assert.equal(await cat(lab, a, "/var/tmp/marker"), "saved", "A's state survives down and up");
    ok(await lab.cli(["run", "down"]), "run down");
    ok(await lab.cli(["run", "cleanup"]), "run cleanup");
    assert.equal(existsSync(snaps), false, "cleanup removes the snapshots");

    // And down --purge removes them too.
    ok(await lab.cli(["run", "up"]), "up after cleanup");
    ok(await lab.cli(["snapshot", "save", "s3"]), "save s3");
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    assert.equal(existsSync(labDir) && existsSync(snaps), false, "down --purge removes the snapshots");
    await assertNoResidue(lab, "after snapshots and down --purge");
  },
);
