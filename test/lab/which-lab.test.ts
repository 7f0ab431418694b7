// What a user meets first, on a lab never brought up and on one that is up: the dry run previews
// every step of a new lab (exit 3, nothing made) and nothing once it is up (exit 0); status, ssh
// and exec of a lab that is down say so at once, naming the command that brings it up; every run
// names its lab and config first; `labs` lists the host's labs, up or down; `run down --lab NAME`
// takes down a lab whose config is gone.
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { LabRow } from "../../cli/commands/labs.js";
import { summary, taskEvents } from "../support/json-events.js";
import { assertNoResidue, labTest, ok, sameSnapshot, settled } from "../support/lab.js";

labTest(
  "a new lab: dry run previews every step (exit 3, nothing made); status, ssh and exec say it is down; up, then labs, a dry run that changes nothing, down --lab with the config gone",
  { name: "wl", subnet: 57, containers: { count: 2 } },
  async (lab) => {
    const labs = async (): Promise<LabRow[]> =>
      JSON.parse(ok(await lab.cli(["labs", "--json"]), "labs").stdout) as LabRow[];
    assert.deepEqual(await labs(), [], "labs of a host with none");

    // The first thing a careful user runs: every step previewed, none failed, nothing made.
    const dry = await lab.cli(["--json", "run", "up", "--dry-run", "--detailed-exitcode"]);
    assert.equal(dry.exitCode, 3, `${dry.stdout}\n${dry.stderr}`);
    const s = summary(dry);
    assert.equal(s.failed, 0, dry.stdout);
    assert.ok(s.wouldChange > 0);
    const states = new Map(taskEvents(dry).map((e) => [e.id, e.state]));
    for (const id of ["container.overlay[wl-10]", "container.hostname[wl-10]", "container.ready[wl-11]"])
      assert.equal(states.get(id), "would-change", `${id} in the preview`);
    sameSnapshot(settled(await lab.ns.snapshot()), settled(lab.before), "after a dry run");
    assert.deepEqual(await readdir(lab.workdir).catch(() => []), [], "a dry run made the workdir");
    assert.deepEqual(await labs(), [], "a dry run recorded the lab");

    // A lab that is down: one line saying so and how to bring it up, exit 1 (not 28 FAIL lines,
    // not an ssh waiting on an address with no bridge behind it).
    const up = new RegExp(`sudo aplspawn -c ${lab.config} run up`);
    const st = await lab.cli(["status"]);
    assert.equal(st.exitCode, 1, st.stdout);
    assert.match(st.stdout, new RegExp(`^‣ \\[ INFO \\] lab wl, config ${lab.config}(\n|$)`));
    assert.doesNotMatch(st.stdout, /FAIL/);
    assert.match(st.stderr, /lab wl is down: nothing of it runs/);
    assert.match(st.stderr, up);
    for (const args of [
      ["ssh", "wl-10", "--", "true"],
      ["exec", "wl-10", "--", "true"],
    ]) {
      const r = await lab.cli(args);
      assert.equal(r.exitCode, 1, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /container wl-10 is not running \(lab wl is down\)/, args[0]);
      assert.match(r.stderr, up, args[0]);
    }

    const u = ok(await lab.cli(["run", "up"]), "run up");
    assert.match(u.stdout, new RegExp(`^‣ \\[ INFO \\] lab wl, config ${lab.config}(\n|$)`));
    const [row] = await labs();
    assert.deepEqual(
      { ...row, labDir: undefined },
      {
        lab: "wl",
        state: "up",
        containersUp: 2,
        containers: 2,
        bridge: "br-wl",
        subnet: "10.10.57.0/26",
        owner: null,
        config: lab.config,
        labDir: undefined,
      },
    );
    assert.equal(row?.labDir, join(lab.workdir, "wl"));

    // Up as it should be: the preview has nothing to change.
    const again = await lab.cli(["--json", "run", "up", "--dry-run", "--detailed-exitcode"]);
    assert.equal(again.exitCode, 0, again.stdout);
    assert.equal(summary(again).wouldChange, 0);

    // One container stopped: exec says that one is not running while the lab is up.
    ok(await lab.cli(["run", "stop", "--only", "wl-11"]), "stop wl-11");
    const one = await lab.cli(["exec", "wl-11", "--", "true"]);
    assert.equal(one.exitCode, 1);
    assert.match(one.stderr, /container wl-11 is not running \(lab wl is up, but not it\)/);
    assert.equal((await labs())[0]?.state, "partial");

    // The config is gone: the lab is found by its name, and taken down from its record.
    await rm(lab.config);
    const byName = (args: string[]) => lab.ns.cli(args, { cwd: lab.dir });
    const down = ok(await byName(["run", "down", "--lab", "wl"]), "down --lab");
    assert.match(down.stdout, new RegExp(`lab wl, config ${lab.config} \\(gone: as its last run read it\\)`));
    assert.equal((await labs())[0]?.state, "down");
    const none = await byName(["run", "down", "--lab", "nosuch"]);
    assert.equal(none.exitCode, 2);
    assert.match(none.stderr, /no lab named nosuch on this host/);
    await assertNoResidue(lab, "after down --lab");
  },
);
