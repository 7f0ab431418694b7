// `aplspawn test`, for real: Molecule's sequence on a lab of one container. A role whose verify
// passes exits 0 with a JUnit report of every step and no failure; a failing assert exits 1 with a
// failure naming the assert and the host; a playbook that always changes fails its idempotence
// testcase. Whatever happened, the lab is destroyed and nothing of it is left. Two scenarios run
// side by side, each on names and a subnet picked for it, in one report. The containers run `init:
// script` (sshd alone): what is tested is Molecule's sequence, not the boot, which `create` waits
// for the same way (ssh ready) either way.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { assertNoResidue, labTest, ok, playbook } from "../support/lab.js";

/** A playbook without facts (quicker). */
const play = (tasks: string) => playbook(tasks, { facts: false });

/** The testcases of a JUnit report: name, and its failure message when it failed. */
function testcases(xml: string): { suite: string; name: string; failure?: string; skipped: boolean }[] {
  const out: { suite: string; name: string; failure?: string; skipped: boolean }[] = [];
  const re = /<testcase name="([^"]+)" classname="([^"]+)" time="[\d.]+"(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const failure = /<failure message="([^"]*)"/.exec(m[4] ?? "")?.[1];
    out.push({
      suite: m[2] ?? "",
      name: m[1] ?? "",
      ...(failure !== undefined ? { failure } : {}),
      skipped: (m[4] ?? "").includes("<skipped"),
    });
  }
  return out;
}

/** Assert a JUnit report holds every step of Molecule's sequence, in order, each passed. */
const allPassed = (xml: string) =>
  assert.deepEqual(
    testcases(xml).map((c) => [c.name, c.failure, c.skipped]),
    ["cleanup", "create", "prepare", "converge", "idempotence", "verify", "destroy"].map((n) => [
      n,
      undefined,
      false,
    ]),
  );

labTest(
  "aplspawn test: a passing role exits 0 (every step in the report), a failing assert and a changing playbook exit 1 naming what failed; nothing left",
  { name: "tst", subnet: 71, containers: { count: 1, init: "script" } },
  async (lab) => {
    const file = (n: string, text: string) => writeFile(join(lab.dir, n), text).then(() => join(lab.dir, n));
    const prepare = await file(
      "prepare.yml",
      play('    - ansible.builtin.copy: { dest: /etc/prepared, content: "yes\\n" }\n'),
    );
    const converge = await file(
      "converge.yml",
      play(
        '    - name: the motd\n      ansible.builtin.copy: { dest: /etc/motd, content: "{{ inventory_hostname }}\\n" }\n',
      ),
    );
    const verify = await file(
      "verify.yml",
      play(`    - ansible.builtin.slurp: { src: /etc/motd }
      register: motd
    - ansible.builtin.slurp: { src: /etc/prepared }
      register: prepared
    - name: motd names the host, prepare ran first
      ansible.builtin.assert:
        that:
          - (motd.content | b64decode) == inventory_hostname + "\\n"
          - (prepared.content | b64decode) == "yes\\n"
`),
    );
    await lab.writeConfig({ provision: { playbook: converge, prepare, verify, idempotence: true } });
    const junit = join(lab.dir, "report.xml");
    const passed = ok(await lab.cli(["test", "--junit", junit]), "aplspawn test of a passing role");
    allPassed(await readFile(junit, "utf8"));
    // The closing summary names each step and its time.
    assert.match(
      passed.stdout,
      /\[ PASS \] test of lab tst: cleanup [\d.]+ s, create [\d.]+ s, prepare [\d.]+ s, converge [\d.]+ s, idempotence [\d.]+ s, verify [\d.]+ s, destroy [\d.]+ s/,
    );
    await assertNoResidue(lab, "after a passing test");

    // A failing assert: exit 1, the verify testcase names the assert and the host, destroyed.
    const wrong = await file(
      "wrong.yml",
      play(`    - name: motd says hello
      ansible.builtin.assert:
        that: lookup('pipe', 'echo nope') == "hello"
`),
    );
    await lab.writeConfig({ provision: { playbook: converge, verify: wrong } });
    const failed = await lab.cli(["--json", "test", "--junit", junit]);
    assert.equal(failed.exitCode, 1, failed.stdout + failed.stderr);
    const cases = testcases(await readFile(junit, "utf8"));
    assert.deepEqual(
      cases.map((c) => c.name),
      ["cleanup", "create", "converge", "verify", "destroy"],
    );
    assert.match(cases[3]?.failure ?? "", /TASK \[motd says hello\] failed on tst-10: Assertion failed/);
    assert.equal(cases[4]?.failure, undefined, "destroy after a failed verify");
    // --json: the steps as events, and the closing one.
    const events = failed.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; step?: string; ok?: boolean });
    assert.ok(events.some((e) => e.event === "test-step" && e.step === "verify" && e.ok === false));
    assert.ok(events.some((e) => e.event === "test" && e.ok === false));
    await assertNoResidue(lab, "after a failed verify");

    // A playbook that changes every time: the idempotence testcase fails, naming the task.
    const changing = await file(
      "changing.yml",
      play("    - name: always changes\n      ansible.builtin.command: date\n"),
    );
    await lab.writeConfig({ provision: { playbook: changing, idempotence: true } });
    const notIdem = await lab.cli(["test", "--junit", junit]);
    assert.equal(notIdem.exitCode, 1, notIdem.stdout + notIdem.stderr);
    const idem = testcases(await readFile(junit, "utf8")).find((c) => c.name === "idempotence");
    assert.match(
      idem?.failure ?? "",
      /is not idempotent: its second run changed 1: always changes on tst-10/,
    );
    await assertNoResidue(lab, "after a changing playbook");
  },
);

labTest(
  "aplspawn test --all: two scenarios side by side, each on names of its own, one report, nothing left",
  { name: "scn", subnet: 72, containers: { count: 1, init: "script" } },
  async (lab) => {
    const converge = await lab.file(
      "converge.yml",
      play('    - ansible.builtin.copy: { dest: /etc/motd, content: "hi\\n" }\n'),
    );
    // Not alpha and beta: those are the labs of test/net (their residue checks would see these cgroups).
    for (const s of ["tcalpha", "tcbeta"]) {
      await mkdir(join(lab.dir, "scenarios", s), { recursive: true });
      // Neither pins its lab name, bridge, chain, subnet or container names.
      await writeFile(
        join(lab.dir, "scenarios", s, "aplspawn.yaml"),
        stringify({
          workdir: lab.workdir,
          image: { url: `file://${lab.image.path}` },
          containers: { count: 1, init: "script", machinesDir: lab.machinesDir, readyTimeout: 90 },
          provision: { playbook: converge, idempotence: true },
        }),
      );
    }
    const junit = join(lab.dir, "all.xml");
    const r = ok(
      await lab.ns.cli(["test", "--all", "--junit", junit], { cwd: lab.dir }),
      "aplspawn test --all",
    );
    const cases = testcases(await readFile(junit, "utf8"));
    assert.deepEqual([...new Set(cases.map((c) => c.suite))].sort(), ["tcalpha", "tcbeta"]);
    assert.equal(cases.filter((c) => c.failure).length, 0);
    assert.equal(cases.filter((c) => c.name === "idempotence").length, 2);
    // Side by side: each one's lines say whose they are, and their bridges differ.
    assert.match(r.stdout, /^\[tcalpha\] /m);
    assert.match(r.stdout, /^\[tcbeta\] /m);
    await assertNoResidue(lab, "after two scenarios");
  },
);

labTest(
  "aplspawn test --reuse-prepare: the first run keeps prepare's state, the next restores it without running prepare, a changed prepare runs again; destroy spares the snapshot, down --purge takes it",
  { name: "rpr", subnet: 76, containers: { count: 1, init: "script" } },
  async (lab) => {
    const file = (n: string, text: string) => writeFile(join(lab.dir, n), text).then(() => join(lab.dir, n));
    const snaps = join(lab.workdir, lab.name, "snapshots");
    // Each run of prepare appends a line of its own (a fresh uuid): the line says which run made it.
    const prepareTasks =
      "    - ansible.builtin.shell: cat /proc/sys/kernel/random/uuid >> /etc/prepare-runs\n";
    const prepare = await file("prepare.yml", play(prepareTasks));
    const converge = await file(
      "converge.yml",
      play('    - ansible.builtin.copy: { dest: /etc/motd, content: "hi\\n" }\n'),
    );
    // verify: /etc/prepare-runs holds exactly this text (a regex: any one line at first).
    const verifyThat = (expr: string) =>
      file(
        "verify.yml",
        play(`    - ansible.builtin.slurp: { src: /etc/prepare-runs }
      register: runs
    - name: prepare's marker
      ansible.builtin.assert:
        that:
          - ${expr}
`),
      );
    const verify = await verifyThat("(runs.content | b64decode) is match('^[0-9a-f-]{36}\\n$')");
    const junit = join(lab.dir, "report.xml");

    // Without provision.prepare there is nothing to keep: exit 2 before anything changes.
    await lab.writeConfig({ provision: { playbook: converge } });
    const none = await lab.cli(["test", "--reuse-prepare"]);
    assert.equal(none.exitCode, 2, none.stdout + none.stderr);
    assert.match(
      none.stderr,
      /--reuse-prepare keeps the state provision.prepare leaves: .* has no provision.prepare/,
    );

    await lab.writeConfig({ provision: { playbook: converge, prepare, verify, idempotence: true } });
    // A passed testcase's note (its <system-out>).
    const note = async (name: string) =>
      new RegExp(`<testcase name="${name}"[^>]*>\\s*<system-out>([^<]*)</system-out>`).exec(
        await readFile(junit, "utf8"),
      )?.[1];
    const snapshotsNow = () => (existsSync(snaps) ? readdirSync(snaps).sort() : []);
    const marker = (snap: string) => {
      const [c] = readdirSync(join(snaps, snap));
      return readFileSync(join(snaps, snap, c as string, "layers", "1", "etc", "prepare-runs"), "utf8");
    };

    // 1. prepare runs and its state is kept: one snapshot of aplspawn's, that survives destroy.
    const first = ok(await lab.cli(["test", "--reuse-prepare", "--junit", junit]), "first --reuse-prepare");
    allPassed(await readFile(junit, "utf8"));
    const [snap1, ...more] = snapshotsNow();
    assert.match(snap1 ?? "", /^aplspawn-prepare-[0-9a-f]{16}$/);
    assert.deepEqual(more, []);
    assert.match((await note("prepare")) ?? "", new RegExp(`kept as snapshot ${snap1}`));
    assert.match(first.stdout, new RegExp(`; prepare kept as snapshot ${snap1} \\(kept after destroy`));
    const ran = marker(snap1 as string);
    assert.match(ran, /^[0-9a-f-]{36}\n$/, "prepare's one line is in the snapshot");
    await assertNoResidue(lab, "after the first --reuse-prepare run");

    // 2. Same inputs (verify changed: not one of prepare's inputs): prepare does not run, its
    // state is there. The verify asserts the very line the first run's prepare wrote, alone.
    await verifyThat(`(runs.content | b64decode) == ${JSON.stringify(ran)}`);
    const second = ok(await lab.cli(["test", "--reuse-prepare", "--junit", junit]), "second --reuse-prepare");
    allPassed(await readFile(junit, "utf8"));
    assert.match(
      (await note("prepare")) ?? "",
      new RegExp(`reused: prepare did not run; create started the containers on snapshot ${snap1}`),
    );
    assert.match(second.stdout, new RegExp(`prepare reused, .*; prepare reused snapshot ${snap1}`));
    assert.doesNotMatch(second.stdout, /TASK \[ansible.builtin.shell\]/);
    assert.deepEqual(snapshotsNow(), [snap1]);
    assert.equal(marker(snap1 as string), ran);
    await assertNoResidue(lab, "after a run that reused prepare");

    // 3. prepare changed: it runs again (a line of its own), and its snapshot replaces the old one.
    await file(
      "prepare.yml",
      play(`${prepareTasks}    - ansible.builtin.file: { path: /etc/prepared-too, state: touch }\n`),
    );
    await verifyThat(
      `(runs.content | b64decode) is match('^[0-9a-f-]{36}\\n$') and (runs.content | b64decode) != ${JSON.stringify(ran)}`,
    );
    const third = ok(
      await lab.cli(["test", "--reuse-prepare", "--junit", junit]),
      "--reuse-prepare, prepare changed",
    );
    assert.match(
      third.stdout,
      /prepare runs and is kept as snapshot aplspawn-prepare-[0-9a-f]{16}: no snapshot of the prepared state for these inputs yet/,
    );
    const [snap2, ...more2] = snapshotsNow();
    assert.notEqual(snap2, snap1);
    assert.match(snap2 ?? "", /^aplspawn-prepare-[0-9a-f]{16}$/);
    assert.deepEqual(more2, [], "the stale snapshot is gone");
    assert.notEqual(marker(snap2 as string), ran);
    assert.match((await note("prepare")) ?? "", new RegExp(`kept as snapshot ${snap2}`));
    await assertNoResidue(lab, "after prepare ran again");

    // The kept snapshot is the lab's: listed, and down --purge removes it and the rest.
    const list = ok(await lab.cli(["snapshot", "list"]), "snapshot list");
    assert.match(list.stdout, new RegExp(`^${snap2} `, "m"));
    ok(await lab.cli(["run", "down", "--purge"]), "down --purge");
    assert.equal(existsSync(snaps), false, "down --purge removes the kept snapshot");
    await assertNoResidue(lab, "after down --purge");
  },
);
