// Every task, every fault: for each id `run up --list-tasks` prints for a lab of 3 containers, a
// run with APLSPAWN_FAIL_AFTER=<id> exits 1, names the task, and leaves the namespace, the loop
// devices, the nspawn processes, the inotify limit and the lab's files as they were before it.
// The ids come from --list-tasks, so a new task is covered without touching this file.
// Grouped for time: the network, image and lab-level tasks up to the containers run against a
// fresh namespace (their rollback undoes everything); the per-container tasks (every kind, at every
// position: first, middle, last) and the tasks after them run against a lab whose network and image
// a first `run up --no-rollback` stopped after image.lower made, so each of those runs rolls back
// only what it made (lab key, containers, inventory).
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { type Lab, ok, taskEvents, withLab } from "../lab/lab-fixture.js";
import { isRoot } from "../support/ns.js";
import {
  afterPurge,
  assertAsBefore,
  type Baseline,
  baseline,
  classify,
  containerTask,
  imageOf,
  listTasks,
  loopsIn,
} from "./support-a.js";

const skip = isRoot ? false : "needs root (mounts, bridges, systemd-nspawn)";

/** One fault run: what went wrong with it (undefined when it behaved). Residue throws at once. */
async function faultAfter(
  lab: Lab,
  labName: string,
  id: string,
  before: Baseline,
  image: string,
): Promise<string | undefined> {
  const r = await lab.cli(["--json", "run", "up"], { APLSPAWN_FAIL_AFTER: id });
  const out = `\nstdout:\n${r.stdout.split("\n").slice(-15).join("\n")}\nstderr:\n${r.stderr}`;
  if (r.exitCode === 0) return `fault after ${id}: the run succeeded (the fault never fired)`;
  const problems: string[] = [];
  if (r.exitCode !== 1) problems.push(`exit ${r.exitCode}, not 1`);
  if (!r.stderr.includes(id)) problems.push("stderr does not name the task");
  if (!/injected failure/.test(r.stderr)) problems.push("stderr does not say the failure was injected");
  const failedUndo = taskEvents(r).filter((e) => e.state === "rollback-failed");
  if (failedUndo.length > 0) problems.push(`rollback failed: ${failedUndo.map((e) => e.id).join(", ")}`);
  await assertAsBefore(lab, before, `fault after ${id}${out}`, {
    loops: loopsIn(r),
    image,
    allowed: afterPurge(labName),
  });
  return problems.length > 0 ? `fault after ${id}: ${problems.join("; ")}${out}` : undefined;
}

test(
  "a fault after each network, image and lab task before the containers rolls back to nothing",
  { skip },
  () =>
    withLab(
      "rfa",
      41,
      async (lab) => {
        const image = await imageOf(lab);
        const ids = await listTasks(lab);
        const firstContainer = ids.findIndex((id) => containerTask(id));
        const { labLevel } = classify(ids);
        const early = labLevel.filter((id) => ids.indexOf(id) < firstContainer);
        assert.ok(early.includes("net.bridge") && early.includes("image.loop"), early.join(", "));
        let before = await baseline(lab);
        const failures: string[] = [];
        for (const id of early) {
          const f = await faultAfter(lab, "rfa", id, before, image);
          if (f) {
            failures.push(f);
            // A run that did not fail left a lab up: take it down before the next fault.
            ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
            await assertAsBefore(lab, before, `down after ${id}`, { allowed: afterPurge("rfa") });
            before = await baseline(lab);
          }
        }
        assert.deepEqual(failures, [], failures.join("\n\n"));
      },
      { network: { chain: "RFA" } },
    ),
);

test(
  "a fault after each per-container task (every kind, first/middle/last container) and each later task rolls back that run",
  { skip },
  () =>
    withLab(
      "rfb",
      42,
      async (lab) => {
        const image = await imageOf(lab);
        const start = await baseline(lab);
        const ids = await listTasks(lab);
        const firstContainer = ids.findIndex((id) => containerTask(id));
        const { labLevel, perContainer } = classify(ids);
        const late = labLevel.filter((id) => ids.indexOf(id) > firstContainer);
        // Each kind once per position (first, middle, last): with 3 containers, every container id.
        const kinds = [...new Set(perContainer.map((p) => p.kind))];
        const picked = perContainer.map((p) => p.id);
        assert.equal(picked.length, kinds.length * 3, picked.join(", "));
        assert.ok(kinds.includes("container.nspawn") && kinds.includes("container.overlay"), kinds.join());
        assert.ok(late.includes("lab.inventory"), late.join(", "));

        // The network and the image first (up to image.lower, kept by --no-rollback): the runs
        // below find them in place and leave them be.
        const prepare = async () => {
          const r = await lab.cli(["run", "up", "--no-rollback"], { APLSPAWN_FAIL_AFTER: "image.lower" });
          assert.equal(r.exitCode, 1, `preparing the network and the image:\n${r.stdout}\n${r.stderr}`);
          assert.equal(
            (await lab.ns.run("mountpoint", ["-q", join(lab.workdir, "rfb", "lower")])).exitCode,
            0,
          );
          return baseline(lab);
        };
        let before = await prepare();
        const failures: string[] = [];
        for (const id of [...picked, ...late]) {
          const f = await faultAfter(lab, "rfb", id, before, image);
          if (f) {
            failures.push(f);
            ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
            before = await prepare();
          }
        }
        const down = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down --purge");
        await assertAsBefore(lab, start, "after the last down", {
          loops: loopsIn(down),
          image,
          allowed: afterPurge("rfb"),
        });
        assert.deepEqual(failures, [], failures.join("\n\n"));
      },
      { network: { chain: "RFB" } },
    ),
);
