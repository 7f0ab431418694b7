// Concurrency: two `run up` of one lab started together: one proceeds, the other fails at once
// naming the holder's PID. Two labs with their own bridges, chains and ranges run side by side in
// one namespace; each `run down` removes only its own lab, and nothing is left at the end.
import assert from "node:assert/strict";
import {
  afterPurge,
  assertAsBefore,
  assertNoDuplicateRules,
  iptablesSave,
  labLoops,
  labTest,
  overlayMounts,
  watch,
} from "../support/fault-lab.js";
import { nspawnPids, ok } from "../support/lab.js";

labTest(
  "two run up of one lab: one proceeds, the other fails at once naming its PID; two labs side by side, each down removes only its own",
  "rcc",
  46,
  async (lab, { image, start, track }) => {
    // The second lab: same namespace and workdir, its own name, bridge, chain, range and machinesDir.
    // Its containers' names start with lab A's prefix: the residue checks of lab A find them too.
    const labB = await lab.add("rccb", 47, {
      network: { chain: "RCCB" },
      containers: { count: 2, prefix: "rcc-b" },
    });
    const machinesB = labB.machinesDir;
    // Two runs of lab A at once: the first to exit must be the loser, while the other still runs.
    const [a1, a2] = await Promise.all([
      watch(lab, ["--json", "run", "up"]),
      watch(lab, ["--json", "run", "up"]),
    ]);
    const first = await Promise.race([a1.done.then(() => a1), a2.done.then(() => a2)]);
    const winner = first === a1 ? a2 : a1;
    const lost = await first.done;
    assert.equal(lost.exitCode, 1, `the second run: exit ${lost.exitCode}\n${lost.stdout}\n${lost.stderr}`);
    assert.match(lost.stderr, new RegExp(`locked by PID ${winner.pid}\\b`), lost.stderr);
    const stillRunning = await Promise.race([
      winner.done.then(() => false),
      new Promise((r) => setImmediate(() => r(true))),
    ]);
    assert.ok(stillRunning, "the refused run failed at once, while the holder still ran");
    assert.ok(!lost.stdout.includes('"state":"changed"'), "the refused run changed nothing");

    // Lab B comes up while lab A's run still goes on.
    const upB = labB.cli(["--json", "run", "up"]);
    const [ra, rb] = await Promise.all([winner.done, upB]);
    track(ra, rb);
    ok(ra, "run up of lab A");
    ok(rb, "run up of lab B");
    ok(await lab.cli(["status"]), "status of lab A");
    ok(await labB.cli(["status"]), "status of lab B");
    await assertNoDuplicateRules(lab, "RCC", "lab A");
    await assertNoDuplicateRules(lab, "RCCB", "lab B");
    assert.equal((await overlayMounts(lab, lab.machinesDir)).length, 3);
    assert.equal((await overlayMounts(lab, machinesB)).length, 2);
    assert.equal((await labLoops(lab, "rcc")).length, 1);
    assert.equal((await labLoops(lab, "rccb")).length, 1);

    // Down of A leaves B exactly as it was, and healthy.
    const ofB = async () => ({
      rules: (await iptablesSave(lab)).filter((l) => /RCCB|br-rccb|10\.10\.47\./.test(l)),
      addrs: (await lab.ns.run("ip", ["-o", "addr", "show", "dev", "br-rccb"])).stdout,
      mounts: [...(await overlayMounts(lab, machinesB)), ...(await labLoops(lab, "rccb"))],
      nspawns: (await nspawnPids(machinesB)).sort(),
    });
    const b1 = await ofB();
    const downA = ok(await lab.cli(["--json", "run", "down", "--purge"]), "run down of lab A");
    assert.deepEqual(await ofB(), b1, "lab B is untouched by lab A's down");
    // B's containers may hold copies of A's mounts (those started after A's were made): A's
    // unmounts reach them, and A's loop devices go with its down (tasks/container/share.ts).
    assert.doesNotMatch(
      `${downA.stdout}${downA.stderr}`,
      /released by the kernel/,
      "lab A's loop devices went",
    );
    ok(await labB.cli(["status"]), "status of lab B after lab A's down");
    const save = (await iptablesSave(lab)).join("\n");
    assert.ok(!/\bRCC\b/.test(save), "lab A's chains are gone");
    assert.equal((await lab.ns.run("ip", ["link", "show", "br-rcc"])).exitCode, 1, "lab A's bridge is gone");
    assert.deepEqual(await nspawnPids(`${lab.machinesDir}/`), [], "lab A's containers are gone");

    const downB = ok(await labB.cli(["--json", "run", "down", "--purge"]), "run down of lab B");
    // ip_forward is one switch for the namespace: the lab that turned it on restores it, but if
    // that lab goes down first while the other still runs, it stays on (docs/performance.md, "Known limits").
    await assertAsBefore(lab, start, "after both downs", {
      ignore: ["ipForward"],
      loops: track(ra, rb, downA, downB),
      image,
      allowed: new RegExp(
        `${afterPurge("rcc").source}|^(rccb\\.yaml|machines-rccb|work/rccb|work/rccb/journal\\.jsonl)$`,
      ),
    });
  },
);
