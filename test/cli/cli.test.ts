// The CLI called in-process (citty-style: argv as a parameter): exit codes, config errors, aliases.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runMain } from "../support/main-io.js";
import { withTempDir } from "../support/ns.js";

const cli = (argv: string[], env: Record<string, string> = {}) => runMain(argv, { env });

test("--help and --version exit 0", async () => {
  const h = await cli(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.out, /Usage: aplspawn/);
  const rh = await cli(["run", "--help"]);
  assert.equal(rh.code, 0);
  assert.match(rh.out, /--dry-run/);
  const v = await cli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.out, /^\d+\.\d+\.\d+\n$/);
});

test("unknown commands, workflows and options exit 2", async () => {
  assert.equal((await cli(["frobnicate"])).code, 2);
  const r = await cli(["run", "nope"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /Unknown workflow "nope"; workflows: up, down/);
  assert.equal((await cli(["run", "up", "--bogus"])).code, 2);
  assert.equal((await cli(["run", "up", "--concurrency", "zero"])).code, 2);
});

test("each workflow takes only its own options: one it would ignore exits 2, naming who takes it", async () => {
  const cases: [string[], RegExp][] = [
    [["run", "netup", "--only", "x"], /--only applies to spawn, stop and reset, not to `run netup`/],
    [["run", "up", "--only", "x"], /--only applies to spawn, stop and reset, not to `run up`/],
    [["run", "down", "--only", "x"], /--only applies to spawn, stop and reset, not to `run down`/],
    [["run", "up", "--purge"], /--purge applies to down, not to `run up`/],
    [["run", "stop", "--purge"], /--purge applies to down, not to `run stop`/],
    [["run", "reset", "--only", "x", "--purge"], /--purge applies to down, not to `run reset`/],
    [
      ["run", "getimage", "--concurrency", "2"],
      /--concurrency applies to up, down, spawn, stop and reset, not to `run getimage`/,
    ],
  ];
  for (const [argv, message] of cases) {
    const r = await cli(argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
    assert.match(r.err, message);
  }
});

test("a bad config exits 2 and lists every problem with its key path", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "bad.yaml");
    await writeFile(
      f,
      [
        "lab: a/b",
        "netwrk: {}",
        "network:",
        "  bridge: averyveryverylongbridge",
        "  adress: 1.2.3.4/24",
        "containers:",
        "  count: -1",
        "image:",
        "  url: ftp://x",
      ].join("\n"),
    );
    const r = await cli(["-c", f, "run", "up"]);
    assert.equal(r.code, 2);
    for (const re of [
      /lab: /,
      /netwrk: unknown key \(did you mean "network"\?\)/,
      /network\.bridge: .*15 characters/,
      /network\.adress: unknown key \(did you mean "address"\?\)/,
      /containers\.count: /,
      /image\.url: must be an http/,
    ])
      assert.match(r.err, re);
    const v = await cli(["validate", f]);
    assert.equal(v.code, 2);
  }));

test("cross-field problems: range outside the subnet, containing the bridge, too small", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "c.yaml");
    await writeFile(
      f,
      "network: {address: 10.0.0.1/24}\ncontainers: {count: 5, ipRange: [10.0.0.1, 10.0.0.3]}\n",
    );
    const r = await cli(["validate", f]);
    assert.equal(r.code, 2);
    assert.match(r.err, /containers\.ipRange: contains the bridge address 10\.0\.0\.1/);
    assert.match(r.err, /containers\.count: 5 containers do not fit/);
    await writeFile(f, "containers: {ipRange: [10.10.12.10, 10.10.13.5]}\n");
    assert.match(
      (await cli(["validate", f])).err,
      /containers\.ipRange\.1: 10\.10\.13\.5 is not a host address in 10\.10\.12\.1\/26/,
    );
    await writeFile(f, "a: [1\n");
    assert.match((await cli(["validate", f])).err, /YAML syntax: .* \(line 2, column 1\)$/m);
  }));

test("the packaged default config is valid", async () => {
  const r = await cli(["validate"]);
  assert.equal(r.code, 0, r.err);
});

test("--list-tasks and the original -o form", async () => {
  const r = await cli(["run", "netup", "--list-tasks"]);
  assert.equal(r.code, 0, r.err);
  const legacy = await cli(["-o", "netup", "--list-tasks"]);
  assert.equal(legacy.code, 0, legacy.err);
  assert.equal(legacy.out, r.out);
  const packaged = join(import.meta.dirname, "../../../config/aplspawn.yaml");
  const afterConfig = await cli(["-c", packaged, "-o", "netup", "--list-tasks"]);
  assert.equal(afterConfig.code, 0, afterConfig.err);
  assert.equal(afterConfig.out, r.out);
});

test("a command's own -o is its own: ssh NAME -- ip -o addr is not the original -o form", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "o.yaml");
    await writeFile(
      f,
      `lab: o\nworkdir: ${join(d.path, "work")}\ncontainers: {count: 1, machinesDir: ${join(d.path, "m")}}\n`,
    );
    const r = await cli(["-c", f, "ssh", "aplspawn1", "--", "ip", "-4", "-o", "addr"]);
    assert.doesNotMatch(r.err, /too many arguments|-o needs an operation/, r.err);
    // The lab was never up: ssh says so (and does not wait on an address nothing answers).
    assert.match(r.err, /aplspawn1/, r.err);
  }));

test("run reset needs --only and names the lab's containers for a name it does not have (exit 2, nothing touched)", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "r.yaml");
    const work = join(d.path, "work");
    await writeFile(
      f,
      `lab: r\nworkdir: ${work}\ncontainers: {count: 2, machinesDir: ${join(d.path, "m")}}\n`,
    );
    for (const only of [[], ["--only", ""], ["--only", ","]]) {
      const r = await cli(["-c", f, "run", "reset", ...only]);
      assert.equal(r.code, 2, `${only.join(" ")}: ${r.err}`);
      assert.match(
        r.err,
        /reset needs --only NAME\[,…\]: the containers to reset \(containers: aplspawn10, aplspawn11\)/,
      );
    }
    const unknown = await cli(["-c", f, "run", "reset", "--only", "aplspawn10,nope"]);
    assert.equal(unknown.code, 2, unknown.err);
    assert.match(unknown.err, /no container named nope in this lab; containers: aplspawn10, aplspawn11/);
    assert.equal(existsSync(work), false, "nothing was written");
    const list = await cli(["-c", f, "run", "reset", "--only", "aplspawn11", "--list-tasks"]);
    assert.equal(list.code, 0, list.err);
    const ids = list.out.trim().split("\n");
    assert.ok(ids.indexOf("reset.containers") < ids.indexOf("container.upper[aplspawn11]"), list.out);
    // The container's steps end with its ssh check; then (with an account for Ansible) its copies.
    assert.equal(ids.filter((i) => i.endsWith("[aplspawn11]")).at(-1), "container.ready[aplspawn11]");
    assert.ok(["container.ready[aplspawn11]", "lab.owner-files"].includes(ids.at(-1) ?? ""), list.out);
    assert.ok(!list.out.includes("aplspawn10"), list.out);
  }));

test("--json: every line of a run carries ts (ISO 8601) and the lab's name, then its event", () =>
  withTempDir(async (d) => {
    const c = join(d.path, "lab.yaml");
    await writeFile(
      c,
      `lab: jsonlab\nworkdir: ${d.path}/work\ncontainers: {machinesDir: ${d.path}/m}\ninventory: {file: ${d.path}/inv.txt}\n`,
    );
    // down of a lab that never came up: nothing to undo, but every step reports.
    const r = await cli(["-c", c, "--json", "run", "down"]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split("\n");
    assert.ok(lines.length > 3, r.out);
    for (const l of lines) {
      const e = JSON.parse(l) as { ts: string; lab: string; event: string };
      assert.equal(e.lab, "jsonlab", l);
      assert.match(e.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
      assert.ok(["task", "group", "info", "progress", "warning", "summary"].includes(e.event), l);
      assert.deepEqual(Object.keys(e).slice(0, 3), ["ts", "lab", "event"], l);
    }
    assert.equal((JSON.parse(lines.at(-1)!) as { event: string }).event, "summary");
    // Nothing was undone, so the host's index of labs did not gain it (root's, outside the test).
    const entry = createHash("sha256").update(`${d.path}/work/jsonlab`).digest("hex").slice(0, 16);
    assert.equal(existsSync(`/var/lib/aplspawn/labs/${entry}.json`), false, "recorded in the index");
  }));

test("validate: a one-line summary of a valid lab; --json gives each problem as data with its key and place", () =>
  withTempDir(async (d) => {
    const good = join(d.path, "good.yaml");
    await writeFile(
      good,
      `workdir: ${d.path}/w\ncontainers:\n  machinesDir: ${d.path}/m\n  sets:\n    - {name: web, count: 2}\n    - {name: db}\n`,
    );
    const r = await cli(["validate", good]);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      `${good}: valid: lab default, 3 containers (web ×2, db ×1), subnet 10.10.12.0/26 on bridge nspawnd0, image /var/lib/aplspawn/images/debian-bookworm.img\n`,
    );
    const j = JSON.parse((await cli(["--json", "validate", good])).out) as Record<string, unknown>;
    assert.deepEqual(j, {
      ok: true,
      file: good,
      lab: "default",
      containers: 3,
      sets: [
        { name: "web", count: 2 },
        { name: "db", count: 1 },
      ],
      subnet: "10.10.12.0/26",
      bridge: "nspawnd0",
      images: ["/var/lib/aplspawn/images/debian-bookworm.img"],
    });

    const bad = join(d.path, "bad.yaml");
    await writeFile(
      bad,
      `workdir: ${d.path}/w\nnetwork:\n  nat: no\ncontainers:\n  machinesDir: ${d.path}/m\n  count: 2\n  concurency: 3\n`,
    );
    const b = await cli(["--json", "validate", bad]);
    assert.equal(b.code, 2);
    assert.equal(b.err, "");
    const out = JSON.parse(b.out) as { ok: boolean; file: string; diagnostics: unknown[] };
    assert.equal(out.ok, false);
    assert.equal(out.file, bad);
    assert.deepEqual(out.diagnostics, [
      {
        path: "network.nat",
        message: "must be true or false",
        line: 3,
        column: 8,
        value: '"no"',
        hint: "YAML 1.2 reads no as a string: write false",
      },
      {
        path: "containers.concurency",
        message: 'unknown key (did you mean "concurrency"?)',
        line: 7,
        column: 3,
      },
    ]);
    // A cross-field problem is placed too.
    const far = join(d.path, "far.yaml");
    await writeFile(
      far,
      `workdir: ${d.path}/w\ncontainers:\n  machinesDir: ${d.path}/m\n  ipRange: [10.10.12.10, 10.99.0.1]\n`,
    );
    const f = JSON.parse((await cli(["--json", "validate", far])).out) as { diagnostics: unknown[] };
    assert.deepEqual(f.diagnostics, [
      {
        path: "containers.ipRange.1",
        message: "10.99.0.1 is not a host address in 10.10.12.1/26",
        line: 4,
        column: 26,
      },
    ]);
  }));

test("every phase in one run: a schema problem, a problem across keys and a missing file are reported together, in file order", () =>
  withTempDir(async (d) => {
    const c = join(d.path, "c.yaml");
    await writeFile(
      c,
      `workdir: ${d.path}/w\nnetwork: {address: 10.10.12.1/28}\ncontainers:\n  machinesDir: ${d.path}/m\n  count: 20\n  concurency: 3\n  sshKey: ${d.path}/nokey\ninventory: {ping: no}\n`,
    );
    const r = await cli(["validate", c]);
    assert.equal(r.code, 2, r.err);
    const problems = r.err.split("\n").filter((l) => l.startsWith("  - "));
    assert.deepEqual(
      problems.map((p) => p.replace(/ \(line.*$/, "").replace(/: .*$/, "")),
      [
        "  - containers.count",
        "  - containers.concurency",
        "  - inventory.ping",
        "  - containers.sshKey",
        "  - containers.sshKey",
      ],
      r.err,
    );
    assert.match(r.err, /containers\.count: 20 containers do not fit in ipRange .* \(line 5, column 10\)/);
    assert.match(
      r.err,
      /inventory\.ping: must be true or false \(line 8, column 19: "no"; YAML 1\.2 reads no as a string: write false\)/,
    );
    assert.match(r.err, new RegExp(`containers\\.sshKey: ${d.path}/nokey does not exist`));
  }));
