// The lock (src/runner/lock.ts) under contention, for real: processes and async callers within
// them taking it at once never hold it together (a counter incremented under the lock loses no
// update). Found by this: a lock read while its file was being created or removed was taken for a
// dead owner's and taken over, and the lock of whoever came next was removed.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { tempDir } from "../support/ns.js";

const FIXTURE = join(import.meta.dirname, "lock-fixture.js");

test("four processes with 25 callers each take one lock 100 times: no update is lost", async () => {
  const d = await tempDir("aplspawn-lock-");
  try {
    const lock = join(d.path, "lock");
    const counter = join(d.path, "counter");
    await writeFile(counter, "0");
    const runs = await Promise.all(
      [1, 2, 3, 4].map(() =>
        execa(process.execPath, [FIXTURE, "--aplspawn-lock-stress", lock, counter, "25"], { reject: false }),
      ),
    );
    for (const r of runs) assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await readFile(counter, "utf8"), "100");
  } finally {
    await d.cleanup();
  }
});
