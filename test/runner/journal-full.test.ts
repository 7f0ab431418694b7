// A journal that cannot grow (a full disk, a file size limit): for real, the synthetic workflow's
// process under RLIMIT_FSIZE, the limit swept over the journal's whole growth. No record is ever
// left cut short (a short write is completed, a failed append is cut back), the run fails and rolls
// back from what is durable, and `down` afterwards (the space back) leaves nothing.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { tempDir } from "../support/ns.js";

const FIXTURE = resolve(import.meta.dirname, "fixture-cli.js");

test("under a file size limit at every point of the journal's growth: whole records only, and down cleans up", async () => {
  const outcomes = { failed: 0, passed: 0 };
  for (let limit = 180; outcomes.passed === 0 && limit < 20_000; limit += 173) {
    const d = await tempDir();
    try {
      const world = join(d.path, "world");
      const lab = join(d.path, "lab");
      await mkdir(world);
      const up = await execa("prlimit", [`--fsize=${limit}`, process.execPath, FIXTURE, "up", world, lab], {
        reject: false,
      });
      if (up.exitCode === 0) outcomes.passed++;
      else outcomes.failed++;
      const path = journalPath(lab);
      const text = await readFile(path, "utf8").catch(() => "");
      assert.ok(text === "" || text.endsWith("\n"), `limit ${limit}: a record cut short:\n${text}`);
      for (const line of text.split("\n").filter(Boolean))
        assert.doesNotThrow(() => JSON.parse(line), `limit ${limit}: a partial line: ${line}`);
      if (text) {
        const j = await Journal.open(realHost(), path, "t", false);
        assert.deepEqual(j.warnings, [], `limit ${limit}`);
      }
      // The space back: down undoes whatever the journal holds.
      const down = await execa(process.execPath, [FIXTURE, "down", world, lab], { reject: false });
      assert.equal(down.exitCode, 0, `limit ${limit}: down\n${down.stdout}\n${down.stderr}`);
      assert.deepEqual(await readdir(world), [], `limit ${limit}: left in the world after down`);
    } finally {
      await d.cleanup();
    }
  }
  assert.ok(outcomes.failed > 5, `only ${outcomes.failed} runs hit the limit`);
  assert.equal(outcomes.passed, 1, "no run fit under the largest limit");
});
