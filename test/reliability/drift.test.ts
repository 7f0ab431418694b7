// Drift (issue 6, item 6) and busy teardown (item 7), for real on small labs.
// Drift: a rule deleted, one container killed and its overlay unmounted, another container killed:
// status names exactly those checks, and `run up` changes exactly the tasks that repair them.
// Busy teardown: a process with its cwd in a merged root makes `run down` retry, then fail naming
// it, keeping the journal; once it is gone, `run down` finishes with nothing left.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { taskIds } from "../support/json-events.js";
import { assertNoResidue, labTest, nspawnPids, ok, ownChainLab } from "../support/lab.js";
import { failing, status } from "../support/lab-state.js";
import { waitFor } from "../support/wait.js";

async function waitGone(path: string): Promise<void> {
  await waitFor(async () => (await nspawnPids(path)).length === 0, 20_000, 100);
  assert.deepEqual(await nspawnPids(path), [], `systemd-nspawn of ${path} is still running`);
}

labTest(
  "drift: status names exactly a deleted rule, an unmounted overlay and two killed containers; up repairs only those",
  ownChainLab("rdrift", 72, 3),
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const healthy = await status(lab);
    assert.equal(healthy.exitCode, 0, failing(healthy.checks).join("\n"));

    // 1. One of our rules, deleted by hand (iptables -S prints it as -A, the comment quoted; the same words with -D delete it).
    const rule = (await lab.ns.run("iptables", ["-w", "-S", "RDRIFT"])).stdout
      .split("\n")
      .find((l) => l.includes(" -s 10.10.72.0/26 -i br-rdrift -o br-rdrift "));
    assert.ok(rule, "the rule between containers is there");
    ok(
      await lab.ns.run("iptables", ["-w", ...rule.replace(/^-A /, "-D ").replaceAll('"', "").split(" ")]),
      "iptables -D",
    );

    // 2. The middle container killed, then its overlay unmounted (it is stopped, so the mount is idle).
    const leaders = ok(await lab.cli(["pids"]), "pids")
      .stdout.trim()
      .split("\n")
      .map(Number);
    assert.equal(leaders.length, 3);
    const [, mid, last] = leaders as [number, number, number];
    process.kill(mid, "SIGKILL");
    await waitGone(join(lab.machinesDir, "rdrift-11"));
    ok(
      await lab.ns.run("umount", [join(lab.machinesDir, "rdrift-11")]),
      "umount the stopped container's overlay",
    );
    // 3. The last container killed, its overlay left mounted.
    process.kill(last, "SIGKILL");
    await waitGone(join(lab.machinesDir, "rdrift-12"));

    const ruleCheck = healthy.checks.find((c) => c.name.includes("Accepting traffic between containers"));
    assert.ok(ruleCheck, "status has a check for the rule between containers");
    const expected = [
      ruleCheck,
      ...healthy.checks.filter((c) => c.target === "rdrift-11"),
      ...healthy.checks.filter((c) => c.target === "rdrift-12" && c.name !== "Checking overlayFS mount"),
    ];
    assert.equal(expected.length, 1 + 6 + 5, "6 checks per container");
    const drifted = await status(lab);
    assert.equal(drifted.exitCode, 1, "status fails while the lab has drifted");
    assert.deepEqual(failing(drifted.checks), failing(expected.map((c) => ({ ...c, ok: false }))));

    const up = ok(await lab.cli(["--json", "run", "up"]), "run up repairs");
    const changed = taskIds(up, "changed").sort();
    const needed = [
      "container.address[rdrift-11]",
      "container.address[rdrift-12]",
      "container.nspawn[rdrift-11]",
      "container.nspawn[rdrift-12]",
      "container.overlay[rdrift-11]",
      "net.filter.rule[internal]",
    ];
    // A container's ready check may already hold when it runs, so its ready task may or may not change.
    const maybe = ["container.ready[rdrift-11]", "container.ready[rdrift-12]"];
    assert.deepEqual(
      changed.filter((id) => !maybe.includes(id)),
      needed,
      `run up changed exactly the drifted tasks:\n${up.stdout}`,
    );
    assert.deepEqual(taskIds(up, "failed"), []);
    const repaired = await status(lab);
    assert.equal(repaired.exitCode, 0, failing(repaired.checks).join("\n"));
    const again = ok(await lab.cli(["--json", "run", "up"]), "run up once more");
    assert.deepEqual(taskIds(again, "changed"), [], "nothing left to repair");

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after run down");
  },
);

labTest(
  "busy teardown: run down retries, fails naming the process that holds a merged root, keeps the journal; later down finishes",
  ownChainLab("rbusy", 73),
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const merged = join(lab.machinesDir, "rbusy-10");
    // A process of the test's mount namespace whose working directory is inside the merged root.
    const holder = spawn(
      "nsenter",
      ["-t", String(lab.ns.pid), "-n", "-m", `--wdns=${merged}/etc`, "--", "sleep", "infinity"],
      {
        stdio: "ignore",
      },
    );
    try {
      await new Promise((r, j) => {
        holder.once("spawn", r);
        holder.once("error", j);
      });
      // nsenter execs sleep (no fork without --pid): wait until it has.
      await waitFor(
        async () => (await readFile(`/proc/${holder.pid}/comm`, "utf8").catch(() => "")).trim() === "sleep",
        2000,
        20,
      );
      const cwd = await readlink(`/proc/${holder.pid}/cwd`).catch(() => "gone");
      assert.equal(cwd, `${merged}/etc`, "the holder runs with its cwd in the merged root");
      const down = await lab.cli(["run", "down"]);
      const out = `${down.stdout}\n${down.stderr}`;
      assert.equal(down.exitCode, 1, `run down with a busy merged root exits 1:\n${out}`);
      assert.match(out, /busy/i, "it says the mount is busy");
      assert.match(out, /after \d+ attempts/, "it retried");
      assert.ok(
        out.includes(String(holder.pid)) || /\bsleep\b/.test(out),
        `it names the holder (PID ${holder.pid} or sleep):\n${out}`,
      );
      const j = await Journal.open(realHost(), journalPath(join(lab.workdir, "rbusy")), "rbusy", false);
      const left = j.entries().map((e) => e.id);
      assert.ok(
        left.includes("container.overlay[rbusy-10]"),
        `the overlay stays journaled: ${left.join(", ")}`,
      );
      assert.ok(!left.includes("container.nspawn[rbusy-10]"), "the container itself was stopped");
    } finally {
      holder.kill("SIGKILL");
      await new Promise((r) =>
        holder.exitCode !== null || holder.signalCode ? r(undefined) : holder.once("exit", r),
      );
    }
    ok(await lab.cli(["run", "down"]), "run down once the holder is gone");
    const j = await Journal.open(realHost(), journalPath(join(lab.workdir, "rbusy")), "rbusy", false);
    assert.deepEqual(
      j
        .entries()
        .map((e) => e.id)
        .filter((id) => !/^(container\.(upper|hostkeys|disk)|lab\.sshkey)/.test(id)),
      [],
      "only what down keeps stays in the journal",
    );
    await assertNoResidue(lab, "after the second run down");
  },
);
