// Cancelling a command that could not start never signals anyone else. Node 20 sends kill(0,
// SIGTERM) (our whole process group) for a kill() of a child whose spawn just failed, before its
// 'error' event: execa's cancelSignal did exactly that when a task's missing command raced another
// task's failure, and the SIGTERM ended the whole `npm test` now and then. The stress runs in a
// process group of its own (detached), so on the old code only it is hit.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";

test("a cancelled command that could not start signals no one: 90 spawns that fail, cancelled around the spawn", async () => {
  const child = spawn(process.execPath, [join(import.meta.dirname, "../support/bin/cancel-spawn.js")], {
    detached: true,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
  assert.equal(code, 0, out);
  const r = JSON.parse(out.trim()) as { signals: number; errors: number };
  assert.equal(r.errors, 90, "every run failed (not found or cancelled)");
  assert.equal(r.signals, 0, "SIGTERMs reached the process group of the cancelling process");
});
