// Every per-container task, every fault: for each kind of container task at every position (first,
// middle, last container of a lab of 3), and for each lab task after the containers', a run with
// APLSPAWN_FAIL_AFTER=<id> exits 1, names the task, and leaves the namespace, the loop devices, the
// nspawn processes, the inotify limit and the lab's files as they were before it. The runs find the
// network and the image in place (a first `run up --no-rollback` stopped after image.lower made
// them), so each rolls back only what it made (lab key, containers, inventory). The ids come from
// --list-tasks, so a new task is covered without touching this file.
// The network, image and lab tasks before the containers are in faults-early.test.ts: a file of its
// own so the two run side by side.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ok } from "../support/lab.js";
import {
  afterPurge,
  assertAsBefore,
  baseline,
  faultAfter,
  faultTargets,
  labTest,
  loopsIn,
} from "./fault-lab.js";

labTest(
  "a fault after each per-container task (every kind, first/middle/last container) and each later task rolls back that run",
  "rfb",
  42,
  async (lab, s) => {
    const { perContainer, late } = await faultTargets(lab);
    // Each kind once per position (first, middle, last): with 3 containers, every container id.
    const kinds = [...new Set(perContainer.map((p) => p.kind))];
    const picked = perContainer.map((p) => p.id);
    assert.equal(picked.length, kinds.length * 3, picked.join(", "));
    assert.ok(kinds.includes("container.nspawn") && kinds.includes("container.overlay"), kinds.join());
    assert.ok(late.includes("lab.inventory"), late.join(", "));

    // The network, the image and the lab key first (the whole of up's prepare group: the fault is
    // after the step that follows it; kept by --no-rollback): the runs below find them in place and
    // leave them be.
    const prepare = async () => {
      const r = await lab.cli(["run", "up", "--no-rollback"], { APLSPAWN_FAIL_AFTER: "containers.extra" });
      assert.equal(r.exitCode, 1, `preparing the network and the image:\n${r.stdout}\n${r.stderr}`);
      assert.equal((await lab.ns.run("mountpoint", ["-q", join(lab.workdir, "rfb", "lower")])).exitCode, 0);
      return baseline(lab);
    };
    let before = await prepare();
    const failures: string[] = [];
    for (const id of [...picked, ...late]) {
      const f = await faultAfter(lab, "rfb", id, before, s.image);
      if (f) {
        failures.push(f);
        ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
        before = await prepare();
      }
    }
    const down = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down --purge");
    await assertAsBefore(lab, s.start, "after the last down", {
      loops: loopsIn(down),
      image: s.image,
      allowed: afterPurge("rfb"),
    });
    assert.deepEqual(failures, [], failures.join("\n\n"));
  },
);
