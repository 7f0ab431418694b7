// `aplspawn test`'s usage errors (exit 2, before anything changes): a config without a playbook to
// converge, a playbook of the sequence that is missing, --all with -c, --keep with --keep-on-failure.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runMain } from "../support/main-io.js";
import { withTempDir } from "../support/ns.js";

test("aplspawn test refuses, before anything changes, what it cannot run", () =>
  withTempDir(async (d) => {
    const bare = join(d.path, "bare.yaml");
    await writeFile(bare, `lab: t1\nworkdir: ${d.path}/work\ninventory: { file: ${d.path}/inv.txt }\n`);
    const none = await runMain(["-c", bare, "test"]);
    assert.equal(none.code, 2, none.err);
    assert.match(none.err, /aplspawn test converges provision\.playbook; the config has none/);
    // Every playbook of the sequence must exist before anything changes: here verify's does not.
    const good = join(d.path, "good.yml");
    await writeFile(good, "- hosts: all\n  tasks: []\n");
    const missing = join(d.path, "missing-verify.yaml");
    await writeFile(
      missing,
      `lab: t2\nworkdir: ${d.path}/work\ninventory: { file: ${d.path}/inv.txt }\nprovision: { playbook: ${good}, verify: ${d.path}/nope.yml }\n`,
    );
    const noVerify = await runMain(["-c", missing, "test"]);
    assert.equal(noVerify.code, 2, noVerify.err);
    assert.match(noVerify.err, /nope\.yml/);
    const both = await runMain(["-c", bare, "test", "--all"]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--all runs scenarios\/\*\/aplspawn\.yaml: give it or -c, not both/);
    const keep = await runMain(["-c", bare, "test", "--keep", "--keep-on-failure"]);
    assert.equal(keep.code, 2);
    assert.match(keep.err, /--keep keeps the lab whatever happens/);
  }));
