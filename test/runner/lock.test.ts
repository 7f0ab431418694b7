// The lock (src/runner/lock.ts) under contention, for real: processes and async callers within
// them taking it at once never hold it together (a counter incremented under the lock loses no
// update, a marker only one holder may create is never found). The lock is the kernel's (flock):
// a holder killed holding it lets go with its death, and nothing is ever taken over. (Found with
// the PID-file lock before it: a lock read while its file was being created or removed was taken
// for a dead owner's and taken over, and the lock of whoever came next was removed.)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { tempDir } from "../support/ns.js";

const FIXTURE = join(import.meta.dirname, "lock-fixture.js");

test("a holder SIGKILLed holding the lock, then six processes taking it 50 times each (five callers at once): one holder at a time, no update lost", async () => {
  const d = await tempDir("aplspawn-lock-");
  try {
    const lock = join(d.path, "lock");
    const counter = join(d.path, "counter");
    await writeFile(counter, "0");
    // A holder that dies holding the lock: the kernel lets go with it, nothing is taken over.
    const holder = spawn(process.execPath, [FIXTURE, "--aplspawn-lock-hold", lock], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on("data", (d: Buffer) => (String(d).includes("held") ? resolve() : undefined));
      holder.once("exit", (c) => reject(new Error(`the holder exited with ${c}`)));
    });
    const gone = new Promise((r) => holder.once("exit", r));
    holder.kill("SIGKILL");
    await gone;
    assert.match(await readFile(lock, "utf8"), /"command":"holder"/, "the dead holder's record stays");
    const runs = await Promise.all(
      [1, 2, 3, 4, 5, 6].map(() =>
        execa(process.execPath, [FIXTURE, "--aplspawn-lock-stress", lock, counter, "50"], { reject: false }),
      ),
    );
    for (const r of runs) assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await readFile(counter, "utf8"), "300");
  } finally {
    await d.cleanup();
  }
});
