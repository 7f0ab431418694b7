// Scale (issue 6, item 9): 50 booted containers on a /24, up (the inotify preflight raises the
// limit they need), status passing for all 50, and down with nothing left.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { assertNoResidue, labTest, nspawnPids, ok } from "../support/lab.js";
import { failing, openFilesUnder, processesLeft, status } from "../support/lab-state.js";

const COUNT = 50;

labTest(
  `${COUNT} containers: up, status passes for all, down leaves nothing`,
  {
    name: "rscale",
    subnet: 74,
    network: { address: "10.10.74.1/24", chain: "RSCALE" },
    containers: {
      count: COUNT,
      ipRange: ["10.10.74.10", "10.10.74.200"],
      concurrency: 25,
      readyTimeout: 600,
    },
    inventory: { ping: false },
  },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    assert.equal((await nspawnPids(lab.dir)).length, COUNT, `${COUNT} containers run`);
    const limit = Number((await readFile("/proc/sys/fs/inotify/max_user_instances", "utf8")).trim());
    assert.ok(limit > 128, `the inotify limit was raised (${limit})`);

    const st = await status(lab);
    assert.equal(st.exitCode, 0, failing(st.checks).join("\n"));
    const names = new Set(
      st.checks.filter((c) => c.name === "Checking overlayFS mount").map((c) => c.target),
    );
    assert.equal(names.size, COUNT, "status checked every container");
    assert.equal(
      ok(await lab.cli(["names"]), "names")
        .stdout.trim()
        .split("\n").length,
      COUNT,
    );

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after run down");
    assert.deepEqual(await openFilesUnder(lab.dir), [], "files under the lab are held open");
    assert.deepEqual(await processesLeft(lab.dir, lab.prefix), [], "processes of the lab are left");
  },
);
