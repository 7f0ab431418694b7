// A corpus of invalid configs: each exits 2, names the key that is wrong, and touches nothing on the host.
import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { BAD_CONFIGS as corpus } from "../support/bad-configs.js";
import { runMain } from "../support/main-io.js";
import { tempDir, withTempDir } from "../support/ns.js";

/** Every corpus message, whole (test/cli/, not dist/). */
const SNAPSHOT = resolve(import.meta.dirname, "../../../test/cli/bad-config.snapshot.txt");

/** Run the CLI in-process; its exit code and what it wrote to stderr. */
const cli = (argv: string[]) => runMain(argv);

test(`${corpus.length} invalid configs: exit 2, the key named, nothing created`, async () => {
  assert.ok(corpus.length >= 90);
  const d = await tempDir();
  const seen: string[] = [];
  // The corpus's configs name no inventory.file: its default (./inventory.txt) is then beside them,
  // as root writes a lab's inventory only under its config's directory.
  const cwd = process.cwd();
  process.chdir(d.path);
  try {
    const workdir = join(d.path, "work");
    for (const [name, yaml, expect] of corpus) {
      const f = join(d.path, "c.yaml");
      const isMapping = !/^(- |hello|lab: \[)/.test(yaml) && !yaml.includes("\n bridge2");
      await writeFile(f, isMapping && !/^workdir:/m.test(yaml) ? `workdir: ${workdir}\n${yaml}` : yaml);
      const { code, err } = await cli(["-c", f, "run", "up"]);
      assert.equal(code, 2, `${name}: exit code (${err})`);
      assert.match(err, expect, `${name}: message`);
      await assert.rejects(stat(workdir), `${name}: nothing may be created`);
      seen.push(`## ${name}\n${err.replaceAll(d.path, "<tmp>")}`);
    }
  } finally {
    process.chdir(cwd);
    await d.cleanup();
  }
  // The whole of every message, as a user reads it: a change to any wording shows in review.
  const text = `${seen.join("\n")}\n`;
  if (process.env.UPDATE_SNAPSHOTS === "1") await writeFile(SNAPSHOT, text);
  assert.equal(
    text,
    await readFile(SNAPSHOT, "utf8"),
    "messages differ from test/cli/bad-config.snapshot.txt (UPDATE_SNAPSHOTS=1 rewrites it)",
  );
});

test("validate and run given a directory for a config: exit 2, saying a file is expected", () =>
  withTempDir(async (d) => {
    for (const argv of [
      ["validate", d.path],
      ["-c", d.path, "validate"],
      ["-c", d.path, "run", "up"],
    ]) {
      const { code, err } = await cli(argv);
      assert.equal(code, 2, `${argv.join(" ")}: ${err}`);
      assert.match(err, /is not a file \(a YAML file is expected\)/);
    }
  }));
