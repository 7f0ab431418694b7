// validate and `run up` on what a config names beyond its own text: the playbook (it must exist and
// pass ansible-playbook --syntax-check, before anything is created), the host's interfaces (a bridge
// name that is another interface's), and the config file itself (--json when it is missing).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { Host } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";
import { assertNoResidue, netLabTest, ok } from "../support/lab.js";
import { runMain } from "../support/main-io.js";
import { requires, withTempDir } from "../support/ns.js";

/** A play for every host, with these tasks. */
const play = (tasks: string) => `- hosts: all\n  gather_facts: false\n  tasks:\n${tasks}`;
const GOOD = play("    - name: ok\n      ansible.builtin.debug: {msg: hi}\n");
// Two actions in one task: YAML that parses, a play Ansible refuses.
const BROKEN = play(
  "    - name: two actions\n      ansible.builtin.command: date\n      ansible.builtin.shell: date\n",
);

/** The real host, except that ansible-playbook is not installed. */
function withoutAnsible(): Host {
  const h = realHost();
  return { ...h, which: async (cmd) => (cmd === "ansible-playbook" ? undefined : h.which(cmd)) };
}

test("validate --json: a YAML error with its line and column; a missing config file is a diagnostic, exit 2", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "c.yaml");
    await writeFile(f, "lab: a\nnetwork:\n\tbridge: b\n");
    const r = await runMain(["--json", "validate", f]);
    assert.equal(r.code, 2, r.err);
    assert.deepEqual(JSON.parse(r.out), {
      ok: false,
      file: f,
      diagnostics: [
        {
          path: "",
          message: "YAML syntax: a tab indents this line: YAML indents with spaces only",
          line: 3,
          column: 1,
        },
      ],
    });
    const missing = join(d.path, "nosuch.yaml");
    for (const argv of [
      ["--json", "validate", missing],
      ["--json", "-c", missing, "validate"],
    ]) {
      const m = await runMain(argv);
      assert.equal(m.code, 2, m.err);
      assert.equal(m.err, "");
      assert.deepEqual(JSON.parse(m.out), {
        ok: false,
        file: missing,
        diagnostics: [{ path: "", message: "no such file" }],
      });
    }
    const plain = await runMain(["validate", missing]);
    assert.equal(plain.code, 2);
    assert.equal(plain.err, `aplspawn: Config file not found: ${missing}\n`);
    const dir = await runMain(["--json", "validate", d.path]);
    assert.equal(dir.code, 2);
    assert.deepEqual(JSON.parse(dir.out).diagnostics, [{ path: "", message: "not a file" }]);
  }));

test("a problem deep in a list is named by its path and placed at its line and column, in --json, on the terminal and by run up, from the schema, the checks across keys and the host's", () =>
  withTempDir(async (d) => {
    const f = join(d.path, "deep.yaml");
    await writeFile(
      f,
      [
        `workdir: ${d.path}/w`,
        "network:",
        "  hostPorts: [tcp/3142, 8080]",
        "containers:",
        `  machinesDir: ${d.path}/m`,
        "  binds:",
        "    - host: /etc/ssl",
        "      container: /ssl",
        "  sets:",
        "    - {name: web}",
        "    - name: db",
        "      image:",
        "        url: https://example.org/images/",
        "        insecure: true",
        "      binds:",
        `        - {host: ${d.path}/nothing, container: /data}`,
        "",
      ].join("\n"),
    );
    const diagnostics = [
      {
        path: "network.hostPorts.1",
        message: "must be tcp/PORT or udp/PORT, e.g. tcp/3142",
        line: 3,
        column: 25,
        value: "8080",
        hint: "write tcp/8080 or udp/8080",
      },
      {
        path: "containers.binds.0.host",
        message: "/etc/ssl is in the system directory /etc: bind a directory of its own",
        line: 7,
        column: 13,
      },
      {
        path: "containers.sets.1.image.url",
        message: 'must end in a file name (the image\'s name in the store), not ""',
        line: 13,
        column: 14,
      },
    ];
    const j = await runMain(["--json", "validate", f]);
    assert.equal(j.code, 2, j.err);
    const out = JSON.parse(j.out) as { diagnostics: Record<string, unknown>[] };
    assert.deepEqual(out.diagnostics.slice(0, 3), diagnostics);
    // The host's check of the set's bind (the path does not exist), last in the file.
    const host = out.diagnostics[3]!;
    assert.equal(out.diagnostics.length, 4, j.out);
    assert.deepEqual([host.path, host.line, host.column], ["containers.sets.1.binds.0.host", 16, 18]);
    // The terminal: the same list, one line each, in the same order.
    const t = await runMain(["validate", f]);
    assert.equal(t.code, 2);
    assert.equal(
      t.err,
      `aplspawn: Invalid config ${f}:\n${[
        "network.hostPorts.1: must be tcp/PORT or udp/PORT, e.g. tcp/3142 (line 3, column 25: 8080; write tcp/8080 or udp/8080)",
        "containers.binds.0.host: /etc/ssl is in the system directory /etc: bind a directory of its own (line 7, column 13)",
        'containers.sets.1.image.url: must end in a file name (the image\'s name in the store), not "" (line 13, column 14)',
        `containers.sets.1.binds.0.host: ${host.message} (line 16, column 18)`,
      ]
        .map((l) => `  - ${l}\n`)
        .join("")}`,
    );
    // run up refuses it with the same words (and nothing made); it checks the binds' host paths as
    // it binds them, not before.
    const up = await runMain(["-c", f, "run", "up"]);
    assert.equal(up.code, 2);
    assert.equal(up.err, t.err.replace(/ {2}- containers\.sets\.1\.binds\.0\.host: .*\n$/, ""));
    assert.equal(existsSync(`${d.path}/w`), false);
  }));

test(
  "validate checks provision.playbook: a missing or broken one is exit 2 at its key; without ansible-playbook, a warning",
  {
    skip: requires("ansible-playbook"),
  },
  () =>
    withTempDir(async (d) => {
      const c = join(d.path, "c.yaml");
      const config = (playbook: string) =>
        writeFile(
          c,
          `workdir: ${d.path}/w\ncontainers: {machinesDir: ${d.path}/m}\nprovision:\n  playbook: ${playbook}\n`,
        );
      await config(join(d.path, "nosuch.yml"));
      const missing = await runMain(["validate", c]);
      assert.equal(missing.code, 2, missing.err);
      assert.match(
        missing.err,
        new RegExp(
          `provision\\.playbook: ${d.path}/nosuch\\.yml does not exist \\(line 4, column 13\\)$`,
          "m",
        ),
      );

      const broken = join(d.path, "broken.yml");
      await writeFile(broken, BROKEN);
      await config(broken);
      const b = await runMain(["--json", "validate", c]);
      assert.equal(b.code, 2, b.err);
      const { diagnostics } = JSON.parse(b.out) as { diagnostics: Record<string, unknown>[] };
      assert.equal(diagnostics.length, 1, b.out);
      assert.equal(diagnostics[0]!.path, "provision.playbook");
      assert.deepEqual([diagnostics[0]!.line, diagnostics[0]!.column], [4, 13]);
      assert.match(
        String(diagnostics[0]!.message),
        new RegExp(
          `^ansible-playbook --syntax-check refuses ${broken}: conflicting action statements: .* \\(${broken}, line \\d+, column \\d+\\)$`,
        ),
      );
      // Not YAML at all: the YAML parser's words.
      await writeFile(broken, "- hosts: all\n  tasks: [\n");
      assert.match((await runMain(["validate", c])).err, /refuses .*broken\.yml: it is not valid YAML: /);

      // Relative to the working directory, as provision runs it.
      const good = join(d.path, "good.yml");
      await writeFile(good, GOOD);
      await config(good);
      const g = await runMain(["validate", c]);
      assert.equal(g.code, 0, g.err);
      assert.equal(g.err, "");

      // Without ansible-playbook: still valid, and said.
      const w = await runMain(["validate", c], { host: withoutAnsible() });
      assert.equal(w.code, 0, w.err);
      assert.match(
        w.err,
        /^aplspawn: warning: ansible-playbook is not installed \(apt-get install ansible-core\): provision\.playbook was not checked/,
      );
      const wj = JSON.parse((await runMain(["--json", "validate", c], { host: withoutAnsible() })).out) as {
        ok: boolean;
        warnings: string[];
      };
      assert.equal(wj.ok, true);
      assert.equal(wj.warnings.length, 1);
      // The file must exist all the same.
      await config(join(d.path, "nosuch.yml"));
      assert.equal((await runMain(["validate", c], { host: withoutAnsible() })).code, 2);
    }),
);

netLabTest(
  "run up with a missing or broken playbook, or without ansible-playbook: exit 2 before anything is created",
  { name: "pbk", subnet: 85, requires: ["ansible-playbook"] },
  async (lab) => {
    const broken = await lab.file("broken.yml", BROKEN);
    const good = await lab.file("good.yml", GOOD);
    // PATH with ip (and nsenter, which enters the namespace; setpriv and test, which check as
    // Ansible's account that it can read the playbook) and no ansible-playbook.
    const bin = join(lab.dir, "bin");
    await mkdir(bin);
    for (const p of ["/usr/sbin/ip", "/usr/bin/nsenter", "/usr/bin/setpriv", "/usr/bin/test"])
      await symlink(p, join(bin, p.split("/").pop()!));
    const cases: [string, string, Record<string, string> | undefined, RegExp][] = [
      [
        "missing",
        join(lab.dir, "nosuch.yml"),
        undefined,
        /provision\.playbook: .*nosuch\.yml does not exist \(line/,
      ],
      [
        "broken",
        broken,
        undefined,
        /provision\.playbook: ansible-playbook --syntax-check refuses .*broken\.yml/,
      ],
      [
        "no ansible-playbook",
        good,
        { PATH: bin },
        /provision\.playbook: ansible-playbook is not installed \(apt-get install ansible-core\); the playbook cannot run without it/,
      ],
    ];
    for (const [what, playbook, env, expect] of cases) {
      await lab.writeConfig({ provision: { playbook } });
      for (const args of [
        ["run", "up"],
        ["run", "up", "--dry-run"],
        ["run", "provision"],
      ]) {
        const r = await lab.cli(args, env);
        assert.equal(r.exitCode, 2, `${what}: ${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, expect, what);
        assert.equal(r.stdout, "", `${what}: nothing ran`);
      }
      assert.equal(existsSync(lab.workdir), false, `${what}: no lab directory`);
    }
    await assertNoResidue(lab, "after the refused runs");
  },
);

netLabTest(
  "network.bridge naming an interface of this host that is not a bridge: validate and run up refuse it (exit 2); an existing bridge is used",
  { name: "ifc", subnet: 86 },
  async (lab) => {
    const { ns } = lab;
    ok(await ns.run("ip", ["link", "add", "lab0", "type", "veth", "peer", "name", "lab0p"]), "a veth pair");
    ok(await ns.run("ip", ["link", "add", "lab1", "type", "bridge"]), "a bridge");
    try {
      await lab.writeConfig({ network: { bridge: "lab0" } });
      for (const args of [["validate"], ["run", "up"], ["run", "netup"]]) {
        const r = await lab.cli(args);
        assert.equal(r.exitCode, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(
          r.stderr,
          /network\.bridge: lab0 is an interface of this host that is not a bridge \(a veth\): give the lab a bridge of its own, e\.g\. nspawnd0 \(line \d+, column \d+\)/,
        );
      }
      assert.equal(existsSync(lab.workdir), false, "no lab directory");
      await lab.writeConfig({ network: { bridge: "lab1" } });
      ok(await lab.cli(["validate"]), "validate with an existing bridge");
    } finally {
      ok(await ns.run("ip", ["link", "del", "lab0"]), "del lab0");
      ok(await ns.run("ip", ["link", "del", "lab1"]), "del lab1");
    }
    await assertNoResidue(lab, "after the refused runs");
  },
);
