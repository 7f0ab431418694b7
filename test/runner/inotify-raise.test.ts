// The tests' shared raise of fs.inotify.max_user_instances (test/support/inotify.ts), taken and let
// go by 4 processes at once, 200 times each, on a limit file and a record of the test's own (the
// host's limit is never touched): while any of them holds it, the limit reads 8192; once the last
// lets go it is the value found first, and neither the record nor its lock is left. Before the
// record was written under a lock and whole, a reader meeting another's write took the record for
// missing and recorded 8192 as the value to put back (8192 was left on the host after a run).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { skip, tempDir } from "../support/ns.js";

const HOLDS = resolve(import.meta.dirname, "../support/bin/inotify-holds.js");

test("the tests' inotify raise, held and let go by 4 processes at once 200 times each: 8192 while held, the first value after, no record or lock left", {
  skip,
}, async () => {
  const d = await tempDir("aplspawn-raise-");
  try {
    const limit = join(d.path, "max_user_instances");
    const record = join(d.path, "raise.json");
    await writeFile(limit, "128\n");
    const runs = await Promise.all(
      [1, 2, 3, 4].map(() =>
        execa(process.execPath, [HOLDS, "--aplspawn-inotify-holds", limit, record, "200"], {
          reject: false,
        }),
      ),
    );
    for (const r of runs) {
      assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
      assert.deepEqual(JSON.parse(r.stdout), { low: 0 }, "the limit read 8192 whenever held");
    }
    assert.equal((await readFile(limit, "utf8")).trim(), "128", "the value found first is back");
    assert.equal(existsSync(record), false, "no record left");
    assert.equal(existsSync(`${record}.lock`), false, "no lock left");
  } finally {
    await d.cleanup();
  }
});
