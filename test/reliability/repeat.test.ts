// Repetition (issue 6, item 5): cycles (5; 20 with APLSPAWN_TEST_DEEP=1) of up, up again, down, down again on a 2-container lab.
// Nothing grows from one cycle to the next (loop devices, mounts, links, rules, open files,
// processes), and the second up and the second down of every cycle change nothing.

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { summary, taskIds } from "../support/json-events.js";
import { assertNoResidue, labTest, nspawnPids, ok, ownChainLab } from "../support/lab.js";
import { backingFile, labLoop, openFilesUnder, processesLeft } from "../support/lab-state.js";
import { rounds } from "../support/rounds.js";

const CYCLES = rounds(5, 20);

labTest(
  `${CYCLES} cycles of run up / run down: nothing grows, the second up and down change nothing`,
  ownChainLab("rrep", 71),
  async (lab) => {
    const labDir = join(lab.workdir, "rrep");
    let filesAfterFirst: string[] | undefined;
    const leftProcesses: string[] = [];
    const stillAttached: string[] = [];
    const t0 = Date.now();
    const mark = (what: string) =>
      console.error(`[repeat] ${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);
    for (let i = 1; i <= CYCLES; i++) {
      const c = `cycle ${i}`;
      const up = ok(await lab.cli(["--json", "run", "up"]), `${c}: run up`);
      mark(`${c} up`);
      assert.ok(summary(up).changed > 0, `${c}: the first up changed something`);
      const loop = await labLoop(lab, "rrep");
      assert.ok(loop, `${c}: the lab recorded its loop device`);
      assert.equal((await nspawnPids(lab.dir)).length, 2, `${c}: 2 containers run`);

      const again = ok(await lab.cli(["--json", "run", "up"]), `${c}: second run up`);
      mark(`${c} up again`);
      assert.equal(
        summary(again).changed,
        0,
        `${c}: second up changed ${taskIds(again, "changed").join(", ")}`,
      );

      const down = ok(await lab.cli(["--json", "run", "down"]), `${c}: run down`);
      mark(`${c} down`);
      assert.ok(summary(down).changed > 0, `${c}: the first down undid something`);
      // The device number is global: another test may attach the same image to it a moment
      // later, so one sighting is not proof; a real leak shows in every cycle.
      if ((await backingFile(loop)) !== "") stillAttached.push(`${c}: ${loop}`);
      const down2 = ok(await lab.cli(["--json", "run", "down"]), `${c}: second run down`);
      mark(`${c} down again`);
      assert.equal(summary(down2).changed, 0, `${c}: the second down changed something`);

      // Links, addresses, rules, sysctls, mounts, nspawn processes, loop devices on the test's files.
      await assertNoResidue(lab, c);
      assert.deepEqual(await openFilesUnder(lab.dir), [], `${c}: files under the lab are held open`);
      // Collected, not asserted at once: one leftover must not hide what later cycles would show.
      for (const p of await processesLeft(lab.dir, lab.prefix)) leftProcesses.push(`${c}: ${p}`);
      // What down keeps (the containers' file systems, keys) stays the same set of files: nothing
      // piles up. (The containers' own writes, e.g. their logs, are inside their disk.img.)
      const files = (await readdir(labDir, { recursive: true })).map(String).sort();
      filesAfterFirst ??= files;
      assert.deepEqual(files, filesAfterFirst, `${c}: the lab dir's files changed between cycles`);
    }
    assert.deepEqual(leftProcesses, [], "processes of the lab were left after run down");
    assert.ok(
      stillAttached.length < Math.max(2, CYCLES / 2),
      `loop devices left attached: ${stillAttached.join(", ")}`,
    );
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    await assertNoResidue(lab, "after --purge");
  },
);
