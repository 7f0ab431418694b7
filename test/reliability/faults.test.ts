// A fault after each task of `run up`, every task once: for each id `run up --list-tasks` prints for
// a lab of 3 containers, a run with APLSPAWN_FAIL_AFTER=<id> exits 1, names the task (on stderr and
// in the --json summary), says the failure was injected, fails no rollback, and leaves the
// namespace, the loop devices, the nspawn processes, cgroups and /run dirs, the holds, the inotify
// limit, the lab's files and its journal's entries (nothing more for a `run down` to undo) as they
// were before it. The ids come from --list-tasks, so a new task is covered without touching this
// file. The lab has every kind of network rule there is (a host port, a subnet let in, a port
// forward): its network tasks are every task of `run netup` (which runs the same tasks alone).
// - The network, image and lab tasks before the containers', and the lab tasks after them, start
//   from nothing: each rollback undoes all the run made (after the containers: containers, lab
//   key, image and network).
// - Each kind of container task at every position (first, middle, last container) finds the
//   network, the image and the lab key in place (a first `run up --no-rollback` stopped after
//   containers.extra made them): each run rolls back only what it made (containers, inventory) and
//   leaves what it found.
// Booting systemd in three containers is most of a run's work once they run: the lab tasks after
// the containers' but the last (the inventory files: nothing of them depends on how a container
// starts) run on the same lab with `containers.init: script`, whose task ids are the same but
// boot-profile's. Every container task, and the last task of all (Ansible's ping: the whole lab's
// rollback after booted containers), run on the default, booted lab. (A container task before
// the containers start runs as long with either init: measured, nothing to gain.)
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  afterPurge,
  assertAsBefore,
  baseline,
  containerTask,
  faultAfter,
  faultTargets,
  labTest,
  listTasks,
  loopsIn,
  nsState,
} from "../support/fault-lab.js";
import { ok } from "../support/lab.js";

labTest(
  "a fault after each task of run up (every task id of a lab of 3, once) rolls back what that run made",
  "rfa",
  41,
  async (lab, s) => {
    // The residue checks read the namespace by one process: what TestNamespace.snapshot reads.
    assert.deepEqual((await nsState(lab)).snap, await lab.ns.snapshot(), "nsState reads the snapshot");
    const { ids, early, perContainer, late } = await faultTargets(lab);
    assert.ok(early.includes("net.bridge") && early.includes("image.loop"), early.join(", "));
    // Each of netup's tasks is one of these: the fault after each of them is here too.
    const netup = ok(await lab.cli(["run", "netup", "--list-tasks"]), "netup --list-tasks")
      .stdout.split("\n")
      .filter(Boolean);
    assert.equal(netup.length, 42, netup.join(", "));
    assert.deepEqual(
      netup.filter((id) => !early.includes(id)),
      [],
      "every netup task is one of up's",
    );
    // Each kind once per position (first, middle, last): with 3 containers, every container id.
    const kinds = [...new Set(perContainer.map((p) => p.kind))];
    assert.equal(perContainer.length, kinds.length * 3, perContainer.map((p) => p.id).join(", "));
    assert.ok(kinds.includes("container.nspawn") && kinds.includes("container.overlay"), kinds.join());
    assert.ok(late.includes("lab.inventory"), late.join(", "));
    assert.equal(late.at(-1), "lab.ansible-ping", late.join(", "));
    const onBoot = (id: string) => !late.includes(id) || id === late.at(-1);

    // The lab with `init: script` has the same tasks but boot-profile's.
    await lab.writeConfig({ containers: { init: "script" } });
    const scriptIds = await listTasks(lab);
    assert.deepEqual(
      scriptIds,
      ids.filter((id) => containerTask(id)?.[1] !== "container.boot-profile"),
      "the script lab runs up's tasks but boot-profile",
    );
    let init: "boot" | "script" = "script";
    const faulted: string[] = [];
    const failures: string[] = [];
    // The fault after `id`, on the lab it runs on.
    const fault = async (id: string, before: Awaited<ReturnType<typeof baseline>>) => {
      const want = onBoot(id) ? "boot" : "script";
      if (want !== init) {
        await lab.writeConfig(want === "boot" ? {} : { containers: { init: "script" } });
        init = want;
      }
      assert.ok(want === "boot" || scriptIds.includes(id), `${id} is a task of the script lab`);
      faulted.push(`${id} (${init})`);
      return faultAfter(lab, "rfa", id, before, s.image);
    };

    let before = s.start;
    for (const id of [...early, ...late]) {
      const f = await fault(id, before);
      if (f) {
        failures.push(f);
        // A run that did not fail left a lab up: take it down before the next fault.
        ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
        await assertAsBefore(lab, before, `down after ${id}`, { allowed: afterPurge("rfa") });
        before = await baseline(lab);
      }
    }

    // The network, the image and the lab key (the whole of up's prepare group: the fault is after
    // the step that follows it; kept by --no-rollback): the runs below find them and leave them be,
    // whichever init the containers have.
    const prepare = async () => {
      const r = await lab.cli(["run", "up", "--no-rollback"], { APLSPAWN_FAIL_AFTER: "containers.extra" });
      assert.equal(r.exitCode, 1, `preparing the network and the image:\n${r.stdout}\n${r.stderr}`);
      assert.equal((await lab.ns.run("mountpoint", ["-q", join(lab.workdir, "rfa", "lower")])).exitCode, 0);
      const b = await baseline(lab);
      assert.deepEqual(b.snap, await lab.ns.snapshot(), "nsState reads the snapshot of a lab in place");
      // The journal the runs below are compared with is read: it holds what the prepare made.
      assert.ok(
        b.journal.includes("net.bridge done") && b.journal.includes("image.lower done"),
        b.journal.join(),
      );
      return b;
    };
    before = await prepare();
    for (const { id } of perContainer) {
      const f = await fault(id, before);
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
      allowed: afterPurge("rfa"),
    });
    assert.deepEqual(failures, [], failures.join("\n\n"));
    // Every id of the default lab got its fault, once, on the lab named above.
    assert.deepEqual(
      faulted.sort(),
      ids.map((id) => `${id} (${onBoot(id) ? "boot" : "script"})`).sort(),
      "each id faulted once",
    );
  },
  {
    hostPorts: ["tcp/3142"],
    allowFrom: ["192.168.77.0/24"],
    forwards: [{ hostPort: 2222, container: "rfa-10", port: 22 }],
  },
);
