// Crash and interrupt: `run up` SIGKILLed at several points resumes to a healthy lab with nothing
// made twice, `run down` after a crash leaves nothing; SIGINT while containers start rolls back
// once and exits 130; a second SIGINT exits at once and a later `run down` cleans up.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  afterPurge,
  assertAsBefore,
  assertLoopsGone,
  assertNoDuplicateRules,
  crash,
  eventRe,
  labLoops,
  labTest,
  overlayMounts,
  watch,
} from "../support/fault-lab.js";
import { runEvents, taskIds } from "../support/json-events.js";
import { type Lab, nspawnPids, ok } from "../support/lab.js";

const NAMES = (p: string) => [`${p}10`, `${p}11`, `${p}12`];

/** The points of `run up` where the CLI is killed, each seen in its --json events. */
// Attach first: the network and the image come up side by side, so a run killed during network
// may already have attached the image (the next run then finds it attached and never attaches);
// the network's rule is checked ("running") by every run, done or not. A kill after the attach
// lands while the network is still being made, too (its rules take longer).
const POINTS: { name: string; re: RegExp }[] = [
  { name: "during attach", re: eventRe("image.loop", "changed") },
  { name: "during network", re: eventRe("net.out.rule[not:10.0.0.0/8]", "running") },
  {
    name: "while containers start",
    re: /"id":"container\.nspawn\[[^\]]+\]","title":"[^"]*","state":"changed"/,
  },
  {
    name: "while waiting for ssh",
    re: /"id":"container\.ready\[[^\]]+\]","title":"[^"]*","state":"running"/,
  },
];

/** The lab is healthy and holds one of each thing: rules, loop device, overlay mounts, nspawns. */
async function assertHealthyOnce(lab: Lab, labName: string, chain: string, what: string) {
  const st = await lab.cli(["status"]);
  assert.equal(st.exitCode, 0, `${what}: status exited ${st.exitCode}\n${st.stdout}\n${st.stderr}`);
  await assertNoDuplicateRules(lab, chain, what);
  const save = (await lab.ns.run("iptables-save", [])).stdout;
  assert.equal(
    save.match(new RegExp(`^:${chain} `, "gm"))?.length,
    2,
    `${what}: chain ${chain} in filter and nat`,
  );
  assert.equal(
    (await labLoops(lab, labName)).length,
    1,
    `${what}: one loop device mounted as the lower layer`,
  );
  const lower = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET"])).stdout
    .split("\n")
    .filter((t) => t === join(lab.workdir, labName, "lower"));
  assert.equal(lower.length, 1, `${what}: one lower mount`);
  const overlays = await overlayMounts(lab, lab.machinesDir);
  assert.deepEqual(
    overlays.sort(),
    NAMES(lab.prefix).map((n) => join(lab.machinesDir, n)),
    `${what}: one overlay mount per container`,
  );
  for (const n of NAMES(lab.prefix))
    assert.equal(
      (await nspawnPids(join(lab.machinesDir, n))).length,
      1,
      `${what}: one systemd-nspawn for ${n}`,
    );
}

labTest(
  "run up SIGKILLed during attach, network, container start and the ssh wait, resumed each time: a healthy lab, nothing twice; down leaves nothing",
  "rcr",
  43,
  async (lab, { image, start, loops, track }) => {
    const problems: string[] = [];
    // Each resumed run is killed at the next point: every point is crashed into and resumed from.
    for (const [i, p] of POINTS.entries()) {
      const w = await watch(lab, ["--json", "run", "up"]);
      const reached = await w.until(p.re);
      await crash(w);
      const r = await w.done;
      track(r);
      assert.ok(reached, `run ${i + 1} never got ${p.name}:\n${r.stdout}\n${r.stderr}`);
      assert.equal(r.signal, "SIGKILL", `run ${i + 1} was killed ${p.name}, not finished`);
      // The dead run's lock stays for the next run to take over.
      const lock = JSON.parse(await readFile(join(lab.workdir, "rcr", "lock"), "utf8")) as {
        pid: number;
      };
      assert.equal(lock.pid, w.pid, "the lock names the killed CLI");
    }
    const resumed = ok(await lab.cli(["--json", "run", "up"]), "run up after the crashes");
    track(resumed);
    assert.match(resumed.stdout, /took over the lock of PID \d+/);
    await assertHealthyOnce(lab, "rcr", "RCR", "after resuming");
    // Loop devices attached by a killed run and not the lab's own one now: detached, or reused.
    const mine = await labLoops(lab, "rcr");
    await assertLoopsGone(
      lab,
      [...new Set(loops)].filter((d) => !mine.includes(d)),
      image,
      "loop devices of the killed runs",
    ).catch((e: Error) => problems.push(`after resuming, one loop device for the lab: ${e.message}`));
    const again = ok(await lab.cli(["--json", "run", "up"]), "a second run up");
    assert.match(again.stdout, /"event":"summary".*"changed":0,/);

    const down = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down --purge");
    await assertAsBefore(lab, start, "after run down", {
      loops: [...new Set([...loops, ...track(down)])],
      image,
      allowed: afterPurge("rcr"),
    });

    // Separately: killed while waiting for ssh, then `run down` (not up) removes everything.
    const w = await watch(lab, ["--json", "run", "up"]);
    const reached = await w.until(POINTS[3]!.re);
    await crash(w);
    const r = await w.done;
    const crashed = track(r);
    assert.ok(reached, `never waited for ssh:\n${r.stdout}\n${r.stderr}`);
    assert.ok((await nspawnPids(lab.dir)).length > 0, "containers were running when the CLI died");
    const down2 = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down after the crash");
    await assertAsBefore(lab, start, "run down after a crash while waiting for ssh", {
      loops: [...crashed, ...track(down2)],
      image,
      allowed: afterPurge("rcr"),
    });
    assert.deepEqual(problems, [], problems.join("\n"));
  },
);

labTest(
  "SIGINT while containers start: exit 130, each resource undone once, nothing left; two SIGINTs: exit 130 at once, run down cleans up",
  "rin",
  44,
  async (lab, { image, start, track }) => {
    const startRe = POINTS[2]!.re;
    const w = await watch(lab, ["--json", "run", "up"]);
    assert.ok(await w.until(startRe), "containers started");
    process.kill(w.pid, "SIGINT");
    const r = await w.done;
    const interrupted = track(r);
    assert.equal(r.exitCode, 130, `exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    const groups = runEvents(r).filter((e) => e.event === "group" && e.id === "rollback");
    assert.equal(groups.length, 1, "one rollback");
    const undone = taskIds(r, "rolled-back");
    assert.ok(undone.includes("net.bridge") && undone.some((id) => id.startsWith("container.nspawn[")));
    assert.deepEqual(
      undone.filter((id, i) => undone.indexOf(id) !== i),
      [],
      "a resource was undone twice",
    );
    const made = new Set(taskIds(r, "running"));
    assert.deepEqual(
      undone.filter((id) => !made.has(id)),
      [],
      "only what this run started is undone",
    );
    assert.deepEqual(taskIds(r, "rollback-failed"), [], "no undo failed");
    await assertAsBefore(lab, start, "after SIGINT", {
      loops: interrupted,
      image,
      allowed: /^(machines|work|work\/rin|work\/rin\/journal\.jsonl)$/,
    });

    // Two SIGINTs: the second one exits at once, before the rollback has undone everything.
    const w2 = await watch(lab, ["--json", "run", "up"]);
    assert.ok(await w2.until(startRe), "containers started");
    process.kill(w2.pid, "SIGINT");
    assert.ok(await w2.until(/interrupted: stopping and rolling back/), "the first SIGINT was seen");
    process.kill(w2.pid, "SIGINT");
    const r2 = await w2.done;
    const cutShort = track(r2);
    assert.equal(r2.exitCode, 130, `exit ${r2.exitCode}\n${r2.stdout}\n${r2.stderr}`);
    assert.match(r2.stdout, /second interrupt: exiting now/);
    assert.ok(!/"event":"summary"/.test(r2.stdout), "it exited before the rollback finished");
    const left = await lab.ns.snapshot();
    assert.notDeepEqual(left, start.snap, "the rollback was cut short: something is still there");
    const down = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down after two SIGINTs");
    await assertAsBefore(lab, start, "run down after two SIGINTs", {
      loops: [...cutShort, ...track(down)],
      image,
      allowed: afterPurge("rin"),
    });
  },
);
