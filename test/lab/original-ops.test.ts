// The original tool's operations in the order its README gives them, run as its users run them
// (`-o OPERATION`): netup, getimage, spawn, status, pids, inventory, names (and an ansible ping
// through that inventory), then its teardown: stop, netdown, cleanup. Each teardown step lets go of
// what its counterpart took, and afterwards the host is as before netup but for the image cache:
// the lab tests' residue check (namespace, sysctls, holds in /run, mounts, loops, processes, ssh
// masters and their directory), the inventory, and the lab's files. Then the same with every step
// run twice, and a partial `stop --only` that keeps the inotify hold for the containers still running.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { controlPathDir } from "../../src/lab/inventory.js";
import { tree } from "../support/fault-lab.js";
import { assertNoResidue, holdsUnder, inotify, type Lab, labTest, nspawnPids, ok } from "../support/lab.js";
import type { NsResult } from "../support/ns.js";

/** The lab's hold records ("<record>: <lab dir>") on one setting. */
const holdsOn = async (lab: Lab, key: string) =>
  (await holdsUnder(lab.dir)).filter((h) => h.startsWith(`/run/aplspawn-hold.${key}`));

/** Run `-o OPERATION` (the original form) `times` times; each must exit 0. */
async function operation(lab: Lab, op: string, times: number, more: string[] = []): Promise<NsResult> {
  let r: NsResult | undefined;
  for (let i = 1; i <= times; i++)
    r = ok(await lab.cli(["-o", op, ...more]), `-o ${op} ${more.join(" ")} (#${i})`);
  return r!;
}

/**
 * The original sequence on a lab of 3, each step `times` times; with `partialStop`, a `stop --only`
 * of the first container before the full stop. Ends with the residue check.
 */
async function originalSequence(lab: Lab, name: string, times: number, partialStop: boolean) {
  const names = [10, 11, 12].map((n) => `${name}-${n}`);
  const cp = controlPathDir(join(lab.workdir, name));
  const files = await tree(lab.dir);
  assert.deepEqual(await holdsUnder(lab.dir), [], "no hold before netup");

  await operation(lab, "netup", times);
  assert.equal((await holdsOn(lab, "ip_forward")).length, 1, "netup holds ip_forward");
  await operation(lab, "getimage", times);
  await operation(lab, "spawn", times);
  assert.equal((await holdsOn(lab, "inotify")).length, 1, "spawn holds the inotify limit");
  assert.ok((await inotify()) >= 128 + 3 * 40, "the inotify limit is high enough for 3 containers");
  await operation(lab, "status", times);
  const pids = (await operation(lab, "pids", times)).stdout.trim().split("\n");
  assert.equal(pids.length, 3, `one leader per container: ${pids}`);
  await operation(lab, "inventory", times);
  assert.equal((await operation(lab, "names", times)).stdout, names.join("\n"));
  // As the original tool's users do: ansible through the inventory (its masters go in the lab's
  // directory of ssh masters), then status again, which keeps masters of its own there.
  const a = await lab.ns.run("ansible", ["-i", lab.inventory, "-m", "ping", "all"], { cwd: lab.dir });
  assert.equal(a.exitCode, 0, `${a.stdout}\n${a.stderr}`);
  assert.equal(a.stdout.match(/ \| SUCCESS =>/g)?.length, 3, a.stdout);
  await operation(lab, "status", times);
  assert.equal(
    (await readdir(cp)).filter((f) => f.startsWith("st-")).length,
    3,
    "status keeps a master each",
  );

  if (partialStop) {
    const [first, ...rest] = names;
    await operation(lab, "stop", times, ["--only", first!]);
    assert.deepEqual(await nspawnPids(join(lab.machinesDir, first!)), [], `${first} stopped`);
    for (const n of rest)
      assert.equal((await nspawnPids(join(lab.machinesDir, n))).length, 1, `${n} still runs`);
    assert.equal((await holdsOn(lab, "inotify")).length, 1, "a partial stop keeps the hold on inotify");
  }
  await operation(lab, "stop", times);
  assert.deepEqual(await nspawnPids(lab.dir), [], "no container runs after stop");
  assert.deepEqual(await holdsOn(lab, "inotify"), [], "stop lets go of the inotify limit");
  assert.equal(await inotify(), lab.inotifyBefore, "after stop, the inotify limit is as before the lab");
  assert.equal((await holdsOn(lab, "ip_forward")).length, 1, "the network (and its hold) is still up");
  await operation(lab, "netdown", times);
  assert.deepEqual(await holdsUnder(lab.dir), [], "netdown lets go of ip_forward");
  await operation(lab, "cleanup", times);

  await assertNoResidue(lab, `after stop, netdown, cleanup (each ${times}×)`);
  assert.equal(existsSync(lab.inventory), false, "cleanup removes the inventory");
  // What may stay: the (empty) lab and machines directories and the lab's journal. The image is a
  // file:// one outside the lab's directory: its cache stays where it is.
  const left = (await tree(lab.dir)).filter((f) => !files.includes(f));
  const allowed = new RegExp(`^(machines|work|work/${name}|work/${name}/journal\\.jsonl)$`);
  assert.deepEqual(
    left.filter((f) => !allowed.test(f)),
    [],
    "the lab's files are gone (but its journal)",
  );
  assert.ok(existsSync(lab.image.path), "the image stays cached");
}

labTest(
  "the original sequence (-o netup … names, then -o stop, netdown, cleanup) leaves the host as before netup",
  { name: "l5g", subnet: 37 },
  (lab) => originalSequence(lab, "l5g", 1, false),
);

labTest(
  "the original sequence with every step run twice, and a partial stop --only first, leaves the host as before netup",
  { name: "l5h", subnet: 38 },
  (lab) => originalSequence(lab, "l5h", 2, true),
);
