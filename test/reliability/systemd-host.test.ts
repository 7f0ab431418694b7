// aplspawn on a systemd host (test/support/systemd-host.ts boots one): containers registered with
// systemd-machined, each in a scope unit of its own, so the lab outlives the unit that ran `run up`;
// a registered container whose systemd-nspawn was SIGKILLed is repaired by `run up` and removed by
// `run down`; with machined masked, the unregistered path. Every step ends with nothing left inside.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type NsResult, skip } from "../support/ns.js";
import { type SystemdHost, withSystemdHost, writeSystemdLabConfig } from "../support/systemd-host.js";
import { waitFor } from "../support/wait.js";

const NAMES = ["sd-10", "sd-11"];

function ok(r: NsResult, what: string): NsResult {
  assert.equal(r.exitCode, 0, `${what} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The lab's containers' PIDs, as `aplspawn pids` prints them. */
async function labPids(h: SystemdHost): Promise<number[]> {
  return ok(await h.cli(["pids"]), "pids")
    .stdout.trim()
    .split(/\s+/)
    .map(Number);
}

/** machined's machines, by name: leader PID and unit. */
async function machines(h: SystemdHost): Promise<Map<string, { leader: number; unit: string }>> {
  const out = new Map<string, { leader: number; unit: string }>();
  const list = await h.run(["machinectl", "list", "--no-legend", "--no-pager"]);
  for (const name of list.stdout
    .split("\n")
    .map((l) => l.split(/\s+/)[0] ?? "")
    .filter(Boolean)) {
    const r = ok(
      await h.run(["machinectl", "show", name, "-p", "Leader", "-p", "Unit"]),
      `machinectl show ${name}`,
    );
    const leader = Number(/^Leader=(\d+)$/m.exec(r.stdout)?.[1]);
    out.set(name, { leader, unit: /^Unit=(.*)$/m.exec(r.stdout)?.[1] ?? "" });
  }
  return out;
}

/** SIGKILL a container's systemd-nspawn (the parent of its leader), as the OOM killer would. */
async function killNspawn(h: SystemdHost, name: string): Promise<void> {
  const leader = (await machines(h)).get(name)?.leader;
  assert.ok(leader, `${name} is not registered`);
  const ppid = ok(await h.run(["ps", "-o", "ppid=", "-p", String(leader)]), "ps").stdout.trim();
  const comm = ok(await h.run(["ps", "-o", "comm=", "-p", ppid]), "ps").stdout.trim();
  assert.equal(comm, "systemd-nspawn", `the parent of ${name}'s leader is ${comm}`);
  ok(await h.run(["kill", "-KILL", ppid]), "kill");
  await waitFor(async () => (await h.run(["kill", "-0", ppid])).exitCode !== 0, 5000, 100);
}

/** Nothing of the lab is left inside the systemd host. */
async function assertNothingLeft(h: SystemdHost, baseline: string, what: string): Promise<void> {
  assert.deepEqual([...(await machines(h)).keys()], [], `${what}: machines are left`);
  assert.equal(await state(h), baseline, `${what}: the host's state differs from before the lab`);
}

/**
 * What a lab changes inside the systemd host: units (scopes, slices), cgroups under machine.slice,
 * mounts, loop devices, links, addresses, iptables rules, nspawn's /run entries.
 */
async function state(h: SystemdHost): Promise<string> {
  const parts = [
    ["systemctl", "list-units", "--all", "--no-legend", "--plain", "aplspawn-*", "machine-*"],
    ["sh", "-c", "find /sys/fs/cgroup/machine.slice -mindepth 1 -type d 2>/dev/null || true"],
    ["sh", "-c", "findmnt -rn -o TARGET | grep -E '^/(lab|var/lib/machines|var/lib/aplspawn)/' || true"],
    // Loop devices are the whole machine's: only those of this lab's image (a copy of its own).
    ["losetup", "-j", h.image.path],
    ["ip", "-o", "link"],
    ["ip", "-o", "addr"],
    ["sh", "-c", "iptables-save | grep -v '^#'"],
    ["sh", "-c", "find /run/systemd/nspawn -mindepth 2 2>/dev/null || true"],
  ];
  const out: string[] = [];
  for (const argv of parts) out.push(`$ ${argv.join(" ")}\n${(await h.run(argv)).stdout}`);
  return out.join("\n");
}

test(
  "systemd host: registered in scopes of their own, the lab outlives the unit that ran up, a killed nspawn is repaired by up and removed by down, masked machined falls back; nothing left",
  { skip },
  () =>
    withSystemdHost("sysd", async (h) => {
      await writeSystemdLabConfig(h, "sd", 33);
      // The tables exist before, as on any host: a chain made and deleted makes them (lab.ts, initTables).
      for (const t of ["filter", "nat"])
        for (const op of ["-N", "-X"])
          ok(await h.run(["iptables", "-w", "-t", t, op, "APLSPAWN-TEST-INIT"]), "iptables");
      const baseline = await state(h);

      // Never a machine that is not the lab's: one named like a container but from another root
      // (registered with machined by hand, its leader a sleep) makes up fail, and it lives on.
      ok(
        await h.run(["systemd-run", "--unit=foreign", "--quiet", "sleep", "600"]),
        "start the foreign leader",
      );
      const foreign = ok(
        await h.run(["systemctl", "show", "foreign", "-p", "MainPID", "--value"]),
        "MainPID",
      ).stdout.trim();
      ok(
        await h.run([
          "busctl",
          "call",
          "org.freedesktop.machine1",
          "/org/freedesktop/machine1",
          "org.freedesktop.machine1.Manager",
          "RegisterMachine",
          "sayssus",
          "sd-10",
          "0",
          "test",
          "container",
          foreign,
          "/srv/other",
        ]),
        "register the foreign machine",
      );
      const refused = await h.cli(["run", "up"]);
      assert.equal(refused.exitCode, 1, `${refused.stdout}\n${refused.stderr}`);
      assert.match(
        refused.stderr,
        /a machine named sd-10 is registered .* from \/srv\/other, not from this lab's/,
      );
      assert.equal(
        (await machines(h)).get("sd-10")?.leader,
        Number(foreign),
        "the foreign machine was ended",
      );
      ok(await h.run(["systemctl", "stop", "foreign"]), "stop the foreign machine");
      assert.deepEqual([...(await machines(h)).keys()], []);
      await assertNothingLeft(h, baseline, "up refused by a foreign machine");

      // B: run up as a service of its own that ends when up does; the containers stay.
      ok(await h.cli(["run", "up"], { asService: true }), "run up (as a transient service)");
      let ms = await machines(h);
      assert.deepEqual([...ms.keys()].sort(), NAMES, "machined lists both containers after up's unit ended");
      for (const n of NAMES) assert.equal(ms.get(n)?.unit, `aplspawn-${n}.scope`);
      // pids are machined's leaders; status passes; a second up changes nothing.
      const pids = await labPids(h);
      assert.deepEqual(
        pids,
        NAMES.map((n) => ms.get(n)?.leader),
      );
      ok(await h.cli(["status"]), "status");
      assert.match(ok(await h.cli(["run", "up"]), "second run up").stdout, /up: 0 changed/);

      // A: a SIGKILLed nspawn leaves its machine registered; up repairs that container alone.
      await killNspawn(h, "sd-10");
      assert.ok((await machines(h)).has("sd-10"), "the machine of a killed nspawn stays registered");
      const repaired = ok(await h.cli(["run", "up"]), "run up after nspawn was killed");
      assert.match(repaired.stdout, /sd-10 is registered, its systemd-nspawn gone: ending it/);
      ms = await machines(h);
      assert.deepEqual([...ms.keys()].sort(), NAMES);
      const after = await labPids(h);
      assert.deepEqual(
        after,
        NAMES.map((n) => ms.get(n)?.leader),
      );
      assert.notEqual(after[0], pids[0], "sd-10 runs a new init");
      assert.equal(after[1], pids[1], "sd-11 was left as it was");
      ok(await h.cli(["status"]), "status after the repair");

      // A: with both nspawns killed, down removes everything.
      for (const n of NAMES) await killNspawn(h, n);
      ok(await h.cli(["run", "down"]), "run down after the nspawns were killed");
      await assertNothingLeft(h, baseline, "down after killed nspawns");

      // machined masked: not registered (systemd runs, machined does not answer); still outlives up.
      ok(await h.run(["systemctl", "mask", "--now", "systemd-machined"]), "mask machined");
      ok(await h.cli(["run", "up"], { asService: true }), "run up without machined");
      const unregistered = await labPids(h);
      assert.equal(unregistered.length, 2, "both containers run after up's unit ended");
      ok(await h.cli(["status"]), "status without machined");
      ok(await h.cli(["run", "down"]), "run down without machined");
      ok(await h.run(["systemctl", "unmask", "systemd-machined"]), "unmask machined");
      await assertNothingLeft(h, baseline, "down without machined");
    }),
);
