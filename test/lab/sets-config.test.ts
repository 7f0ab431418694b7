// Machine sets (containers.sets): parsing and its errors, names and addresses, --only by set, and
// the inventory they make (INI and YAML). The real lab of sets is test/lab/sets.test.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { containerSpecs, namePrefixes } from "../../config/containers.js";
import { parseConfig } from "../../config/load.js";
import { UsageError } from "../../src/errors.js";
import { inventoryList, pythonLiteral, renderInventory } from "../../src/lab/inventory.js";
import { inventorySpec } from "../../workflows/lab-params.js";
import { selectedSpecs } from "../../workflows/lab-steps.js";
import { problems } from "../support/bad-configs.js";
import { requires } from "../support/ns.js";

const SETS = `workdir: /tmp/w
network: {address: 10.10.12.1/26}
containers:
  machinesDir: /tmp/m
  user: test
  sets:
    - name: web
      count: 2
      groups: [webservers, frontends]
      vars: {http_port: 8080, motd: "it's \\"quoted\\" and spaced", tags: [a, 1], tls: false, extra: {k: v}, none: null}
    - name: db
      pattern: "db-%d-main"
      groups: [dbservers]
      user: dbadmin
      init: script
inventory:
  children: {prod: [webservers, dbservers]}
`;

test("sets: names from each set's pattern, addresses in order across sets, per-set user, init, groups and vars", () => {
  const c = parseConfig(SETS, "t.yaml");
  assert.equal(c.containers.count, 3);
  const specs = containerSpecs(c);
  assert.deepEqual(
    specs.map((s) => [s.name, s.ip, s.set, s.user, s.init, s.groups.join(",")]),
    [
      ["web1", "10.10.12.10", "web", "test", "boot", "webservers,frontends"],
      ["web2", "10.10.12.11", "web", "test", "boot", "webservers,frontends"],
      ["db-1-main", "10.10.12.12", "db", "dbadmin", "script", "dbservers"],
    ],
  );
  assert.equal(specs[0]?.vars.http_port, 8080);
  assert.deepEqual(specs[2]?.vars, {});
  assert.deepEqual(namePrefixes(c), ["web", "db-"]);
});

test("without sets, the single-set form is as before: prefix + last octet, the lab's user and init", () => {
  const c = parseConfig(
    "workdir: /tmp/w\ncontainers: {count: 2, prefix: a-, machinesDir: /tmp/m}\n",
    "t.yaml",
  );
  assert.deepEqual(
    containerSpecs(c).map((s) => [s.name, s.ip, s.set, s.user, s.init, s.groups.length]),
    [
      ["a-10", "10.10.12.10", undefined, "test", "boot", 0],
      ["a-11", "10.10.12.11", undefined, "test", "boot", 0],
    ],
  );
  assert.equal(containerSpecs(parseConfig("lab: t\n", "t.yaml")).length, 3);
  assert.deepEqual(namePrefixes(c), ["a-"]);
  // Its inventory: one group, aplspawn's variables only (the group's defaults in its :vars).
  const ini = renderInventory(inventorySpec(c, "ini"));
  assert.deepEqual(
    ini.split("\n").map((l) => l.split(" ")[0]),
    [
      "#",
      "[aplspawned]",
      "a-10",
      "a-11",
      "",
      "[aplspawned:vars]",
      'ansible_pipelining="true"',
      'ansible_python_interpreter="/usr/bin/python3"',
      "",
    ],
  );
});

test("--only takes set names (all of the set) and container names; an unknown one names both", () => {
  const c = parseConfig(SETS, "t.yaml");
  assert.deepEqual(
    selectedSpecs(c, { only: ["db"] }).map((s) => s.name),
    ["db-1-main"],
  );
  assert.deepEqual(
    selectedSpecs(c, { only: ["web2", "db"] }).map((s) => s.name),
    ["web2", "db-1-main"],
  );
  assert.deepEqual(
    selectedSpecs(c, { only: ["web", "web1"] }).map((s) => s.name),
    ["web1", "web2"],
  );
  assert.throws(
    () => selectedSpecs(c, { only: ["cache"] }),
    (e: unknown) =>
      e instanceof UsageError &&
      /no container or set named cache/.test(e.message) &&
      /sets: web, db/.test(e.message),
  );
});

test("sets are refused with count or prefix, duplicate set or container names, ansible_ vars, unknown children", () => {
  const base = (sets: string, more = "") =>
    `workdir: /tmp/w\ncontainers:\n  machinesDir: /tmp/m\n${more}  sets:\n${sets}`;
  const p1 = problems(base("    - {name: web}\n", "  count: 2\n  prefix: x-\n"));
  assert.ok(
    p1.some((p) => /^containers\.count: not with containers\.sets/.test(p)),
    p1.join("\n"),
  );
  assert.ok(
    p1.some((p) => /^containers\.prefix: not with containers\.sets/.test(p)),
    p1.join("\n"),
  );
  const p2 = problems(base("    - {name: web}\n    - {name: web, pattern: 'w%d'}\n"));
  assert.ok(
    p2.some((p) => p === "containers.sets.1.name: web is the name of set 0 too (line 6, column 14)"),
    p2.join("\n"),
  );
  const p3 = problems(
    base("    - {name: a, pattern: 'node%d', count: 2}\n    - {name: b, pattern: 'node%d'}\n"),
  );
  assert.ok(
    p3.some((p) =>
      p.startsWith("containers.sets.1: two containers would both be named node1 (sets a and b) (line 6"),
    ),
    p3.join("\n"),
  );
  const p4 = problems(base("    - {name: web, vars: {ansible_user: root, ansible_ssh_common_args: x}}\n"));
  assert.equal(
    p4.filter((p) => /containers\.sets\.0\.vars.*must not start with ansible_/.test(p)).length,
    2,
    p4.join("\n"),
  );
  const p5 = problems(base("    - {name: web, vars: {inventory_hostname: x, 'not-a-name': 1}}\n"));
  assert.equal(p5.length, 2, p5.join("\n"));
  const p6 = problems(base("    - {name: web, pattern: 'web'}\n    - {name: x, pattern: '%dx'}\n"));
  assert.equal(
    p6.filter((p) => /pattern: must start with a lower-case letter/.test(p)).length,
    2,
    p6.join("\n"),
  );
  const p7 = problems(base(`    - {name: web, pattern: '${"w".repeat(39)}%d', count: 10}\n`));
  assert.ok(
    p7.some((p) => /containers\.sets\.0\.pattern: makes w+10, more than 40 characters/.test(p)),
    p7.join("\n"),
  );
  const p8 = problems(base("    - {name: web1, pattern: 'web%d'}\n"));
  assert.ok(
    p8.some((p) => /sets\.0\.name: web1 is also a container's name/.test(p)),
    p8.join("\n"),
  );
  const p9 = problems(
    `${base("    - {name: web, groups: [webservers]}\n")}inventory:\n  children: {prod: [webserver], a: [b], b: [a]}\n`,
  );
  assert.ok(
    p9.some((p) =>
      /inventory\.children\.prod: no group named webserver; groups: aplspawned, webservers/.test(p),
    ),
    p9.join("\n"),
  );
  assert.ok(
    p9.some((p) => /inventory\.children\.a: a would be a child of itself/.test(p)),
    p9.join("\n"),
  );
  const p10 = problems(base("    - {name: web, groups: [all]}\n"));
  assert.ok(
    p10.some((p) => /groups\.0: must not be "all"/.test(p)),
    p10.join("\n"),
  );
  // More containers than the range holds.
  const p11 = problems(
    `workdir: /tmp/w\ncontainers:\n  machinesDir: /tmp/m\n  ipRange: [10.10.12.10, 10.10.12.12]\n  sets:\n    - {name: a, count: 2}\n    - {name: b, count: 2}\n`,
  );
  assert.ok(
    p11.some((p) => /^containers\.sets: 4 containers do not fit in ipRange/.test(p)),
    p11.join("\n"),
  );
});

test("the INI inventory: every host in the lab's group with its variables, then set groups and children", () => {
  const c = parseConfig(SETS, "t.yaml");
  const lines = renderInventory(inventorySpec(c, "ini")).split("\n");
  const at = (section: string) => {
    const i = lines.indexOf(section);
    assert.ok(i >= 0, `no ${section} in\n${lines.join("\n")}`);
    const end = lines.findIndex((l, j) => j > i && (l.startsWith("[") || l === ""));
    return lines.slice(i + 1, end);
  };
  const hosts = at("[aplspawned]");
  assert.deepEqual(
    hosts.map((l) => l.split(" ")[0]),
    ["web1", "web2", "db-1-main"],
  );
  const web1 = hosts[0] ?? "";
  assert.match(web1, / ansible_user="test" /);
  assert.match(web1, / http_port="8080"/);
  assert.match(web1, / motd="\\"it's \\\\\\"quoted\\\\\\" and spaced\\""/);
  assert.match(web1, / tags="\[\\"a\\", 1\]"/);
  assert.match(web1, / tls="False" extra="\{\\"k\\": \\"v\\"\}" none="None"$/);
  assert.match(hosts[2] ?? "", / ansible_user="dbadmin" /);
  assert.doesNotMatch(hosts[2] ?? "", /http_port/);
  assert.deepEqual(at("[webservers]"), ["web1", "web2"]);
  assert.deepEqual(at("[frontends]"), ["web1", "web2"]);
  assert.deepEqual(at("[dbservers]"), ["db-1-main"]);
  assert.deepEqual(at("[prod:children]"), ["webservers", "dbservers"]);
});

test("the YAML inventory parses back to the groups, children and each host's variables", () => {
  const c = parseConfig(SETS, "t.yaml");
  const doc = parse(renderInventory(inventorySpec(c, "yaml")));
  const g = doc.all.children;
  assert.deepEqual(Object.keys(g), ["aplspawned", "webservers", "frontends", "dbservers", "prod"]);
  assert.deepEqual(Object.keys(g.aplspawned.hosts), ["web1", "web2", "db-1-main"]);
  const web1 = g.aplspawned.hosts.web1;
  assert.equal(web1.http_port, 8080);
  assert.equal(web1.motd, 'it\'s "quoted" and spaced');
  assert.deepEqual(web1.tags, ["a", 1]);
  assert.equal(web1.tls, false);
  assert.deepEqual(web1.extra, { k: "v" });
  assert.equal(web1.none, null);
  assert.equal(web1.ansible_user, "test");
  assert.equal(web1.ansible_host, "10.10.12.10");
  assert.equal(g.aplspawned.hosts["db-1-main"].ansible_user, "dbadmin");
  assert.equal(g.aplspawned.hosts["db-1-main"].http_port, undefined);
  assert.deepEqual(g.webservers, { hosts: { web1: {}, web2: {} } });
  assert.deepEqual(g.dbservers, { hosts: { "db-1-main": {} } });
  assert.deepEqual(g.prod, { children: { webservers: {}, dbservers: {} } });
});

test("host variables are Python literals in INI (what Ansible's ast.literal_eval reads back)", () => {
  assert.equal(pythonLiteral("a\nb'\""), '"a\\nb\'\\""');
  assert.equal(pythonLiteral([1, true, null, { x: 1.5 }]), '[1, True, None, {"x": 1.5}]');
});

test("Ansible reads both inventories alike: the same groups, children and typed host variables", {
  skip: requires("ansible-inventory"),
}, () => {
  const c = parseConfig(SETS, "t.yaml");
  const dir = mkdtempSync(join(tmpdir(), "aplspawn-sets-"));
  try {
    const read = (format: "ini" | "yaml") => {
      const file = join(dir, `inventory.${format}`);
      writeFileSync(file, renderInventory(inventorySpec(c, format)));
      return JSON.parse(execFileSync("ansible-inventory", ["-i", file, "--list"], { encoding: "utf8" }));
    };
    const ini = read("ini");
    const yaml = read("yaml");
    // all's direct children differ (INI lists a group under its parent alone), nothing else.
    for (const g of ["_meta", "aplspawned", "webservers", "frontends", "dbservers", "prod"])
      assert.deepEqual(ini[g], yaml[g], g);
    assert.deepEqual(ini.prod.children, ["webservers", "dbservers"]);
    assert.deepEqual(ini.webservers.hosts, ["web1", "web2"]);
    const web1 = ini._meta.hostvars.web1;
    assert.deepEqual(
      [web1.http_port, web1.motd, web1.tags, web1.tls, web1.extra, web1.none],
      [8080, 'it\'s "quoted" and spaced', ["a", 1], false, { k: "v" }, null],
    );
    assert.equal(ini._meta.hostvars["db-1-main"].ansible_user, "dbadmin");
    // `inventory --format json` (Ansible's --list shape) as an inventory script: read the same.
    const script = join(dir, "inventory.sh");
    writeFileSync(join(dir, "list.json"), JSON.stringify(inventoryList(inventorySpec(c, "yaml"))));
    writeFileSync(script, `#!/bin/sh\ncat "${join(dir, "list.json")}"\n`, { mode: 0o755 });
    const fromScript = JSON.parse(
      execFileSync("ansible-inventory", ["-i", script, "--list"], { encoding: "utf8" }),
    );
    // (all's direct children differ as INI's do: a group under its parent alone.)
    for (const g of ["_meta", "aplspawned", "webservers", "frontends", "dbservers", "prod"])
      assert.deepEqual(fromScript[g], yaml[g], `${g} from the --list JSON`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
