// Every network, image and lab task, every fault: for each id `run up --list-tasks` prints before the
// containers' tasks (lab of 3 containers), a run with APLSPAWN_FAIL_AFTER=<id> exits 1, names the
// task, and leaves the namespace, the loop devices, the nspawn processes, the inotify limit and the
// lab's files as they were before it. The runs start from a fresh namespace, so each rollback undoes
// everything. The ids come from --list-tasks, so a new task is covered without touching this file.
// The per-container tasks and those after them are in faults-containers.test.ts: a file of its own
// so the two run side by side.
import assert from "node:assert/strict";
import { ok } from "../support/lab.js";
import { afterPurge, assertAsBefore, baseline, faultAfter, faultTargets, labTest } from "./fault-lab.js";

labTest(
  "a fault after each network, image and lab task before the containers rolls back to nothing",
  "rfa",
  41,
  async (lab, s) => {
    const { early } = await faultTargets(lab);
    assert.ok(early.includes("net.bridge") && early.includes("image.loop"), early.join(", "));
    let before = s.start;
    const failures: string[] = [];
    for (const id of early) {
      const f = await faultAfter(lab, "rfa", id, before, s.image);
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
);
