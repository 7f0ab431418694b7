// Capacity (issue #29, item 4): `run up` refuses, before anything is made, a lab the host cannot
// hold, naming what runs out and by how much. For real: a lab of more containers than this host's
// memory holds (sets add up beyond the 250 of one count); in the test's mount namespace, a host
// without /dev/loop-control and with no free loop device (a tmpfs over /dev holding only the
// character devices a run needs); and a run in a pids cgroup whose limit leaves too few tasks (cgroup
// v1 hosts). Each time the run fails at host.capacity, no other task ran, and the namespace, the
// lab's files, the host-wide settings and holds are as before.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import {
  MEMORY_MARGIN,
  MEMORY_PER_CONTAINER,
  PIDS_MARGIN,
  PIDS_PER_CONTAINER,
} from "../../tasks/host/capacity.js";
import { taskEvents } from "../support/json-events.js";
import { type Lab, labTest, SETS_ONLY } from "../support/lab.js";
import { CLI } from "../support/ns.js";

const PIDS_V1 = "/sys/fs/cgroup/pids";

import { assertAsBefore, baseline, journalOnly } from "../support/fault-lab.js";

/** A refused `run up`: exit 1, host.capacity failed and named `what`, nothing else ran, nothing changed. */
async function refused(
  lab: Lab,
  what: RegExp,
  label: string,
  run = () => lab.cli(["--json", "run", "up"]),
): Promise<string> {
  const before = await baseline(lab);
  const r = await run();
  const out = `\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  assert.equal(r.exitCode, 1, `${label}: up exited ${r.exitCode}${out}`);
  assert.match(r.stderr, /the host cannot hold this lab, nothing was started/, `${label}${out}`);
  assert.match(r.stderr, what, `${label}: the refusal names what runs out${out}`);
  const ran = taskEvents(r).filter((e) => e.state !== "running");
  assert.deepEqual(
    ran.map((e) => `${e.id} ${e.state}`),
    ["host.preflight ok", "host.capacity failed"],
    `${label}: tasks that ran${out}`,
  );
  await assertAsBefore(lab, before, label, { allowed: journalOnly(lab.name) });
  return r.stderr;
}

labTest(
  "capacity: up refuses, before anything is made, a lab the host's memory cannot hold, a lab with no loop device to attach, and a lab whose pids cgroup is too small",
  { name: "capy", subnet: 105 },
  async (lab) => {
    // Memory: more containers than MemAvailable holds at the figure per container, by half again.
    const avail = Number(/^MemAvailable:\s+(\d+)/m.exec(await readFile("/proc/meminfo", "utf8"))?.[1]) * 1024;
    const count = Math.ceil(((avail - MEMORY_MARGIN) / MEMORY_PER_CONTAINER) * 1.5);
    const sets = Array.from({ length: Math.ceil(count / 250) }, (_, i) => ({
      name: `s${i}`,
      count: Math.min(250, count - i * 250),
    }));
    await lab.writeConfig({
      network: { address: "10.105.0.1/16" },
      containers: { ...SETS_ONLY, sets, ipRange: ["10.105.0.10", "10.105.250.250"] },
    });
    const mem = await refused(
      lab,
      /memory: \d+ containers need [\d.]+ GiB .* available \(MemAvailable\): [\d.]+ GiB short/,
      "memory",
    );
    assert.match(
      mem,
      new RegExp(`memory: ${count} containers need`),
      "the refusal counts the lab's containers",
    );

    // Loop devices: a /dev of the test's own, without loop-control and loop devices.
    await lab.writeConfig();
    const dev = [
      "set -e",
      "d=$(mktemp -d)",
      "mount -t tmpfs -o mode=0755 capy-dev $d",
      "for n in null zero full random urandom tty; do touch $d/$n; mount --bind /dev/$n $d/$n; done",
      "mount --move $d /dev",
      "rmdir $d",
    ].join("\n");
    const m = await lab.ns.run("sh", ["-c", dev]);
    assert.equal(m.exitCode, 0, m.stderr);
    try {
      await refused(
        lab,
        /loop devices: the lab attaches 1 image and 3 container file systems, \/dev\/loop-control is missing and 0 loop devices are free: 4 short/,
        "loop devices",
      );
    } finally {
      const u = await lab.ns.run("umount", ["-R", "/dev"]);
      assert.equal(u.exitCode, 0, u.stderr);
    }

    // Pids: the run in a pids cgroup of its own whose limit leaves less than the lab needs (cgroup
    // v1, where the containers stay in the pids cgroup of the run that starts them).
    if (!existsSync(`${PIDS_V1}/cgroup.procs`)) return;
    const cg = `${PIDS_V1}/aplspawn-capy-${process.pid}`;
    await mkdir(cg);
    try {
      await writeFile(`${cg}/pids.max`, "64");
      await refused(
        lab,
        new RegExp(
          `pids: 3 containers need ${3 * PIDS_PER_CONTAINER + PIDS_MARGIN} tasks, the cgroup limit ${cg}/pids.max leaves \\d+: \\d+ short`,
        ),
        "pids cgroup",
        () =>
          lab.ns.run(
            "sh",
            [
              "-c",
              `echo $$ > ${cg}/cgroup.procs && exec "$@"`,
              "sh",
              process.execPath,
              CLI,
              "-c",
              lab.config,
              "--json",
              "run",
              "up",
            ],
            { cwd: lab.dir },
          ),
      );
    } finally {
      await rmdir(cg);
    }
  },
);
