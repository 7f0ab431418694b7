// A journal that cannot grow (a full disk, a file size limit): for real, the synthetic workflow's
// process under RLIMIT_FSIZE, the limit swept over the journal's whole growth, and on a small tmpfs
// (in a private mount namespace) left with no room, then one page, two, …. No record is ever
// left cut short (a short write is completed, a failed append is cut back), the run fails and rolls
// back from what is durable, and `down` afterwards (the space back) leaves nothing.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { skip, TestNamespace, tempDir } from "../support/ns.js";

const FIXTURE = resolve(import.meta.dirname, "../support/bin/synthetic-cli.js");

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

test("on a full filesystem (a small tmpfs, 0 to 5 pages left): whole records only; down with the space back cleans up", {
  skip,
}, async () => {
  const ns = await TestNamespace.create();
  const t = await tempDir();
  const failed: number[] = [];
  try {
    for (let pages = 0; pages <= 5; pages++) {
      const world = join(t.path, `world${pages}`);
      const lab = join(t.path, `lab${pages}`);
      await mkdir(world);
      await mkdir(lab);
      const inNs = async (cmd: string, args: string[]) => {
        const r = await ns.run(cmd, args);
        assert.equal(r.exitCode, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
        return r.stdout;
      };
      await inNs("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", lab]);
      const filler = join(lab, "filler");
      await inNs("fallocate", ["-l", String(64 * 1024 - pages * 4096), filler]);
      const up = await ns.run(process.execPath, [FIXTURE, "up", world, lab]);
      if (up.exitCode !== 0) failed.push(pages);
      // Read in the namespace (the tmpfs is mounted only there), exactly (as JSON: no newline lost).
      const read = await ns.run(process.execPath, [
        "-e",
        "const f=process.argv[1];const fs=require('node:fs');process.stdout.write(JSON.stringify(fs.existsSync(f)?fs.readFileSync(f,'utf8'):''))",
        journalPath(lab),
      ]);
      const text = JSON.parse(read.stdout) as string;
      assert.ok(text === "" || text.endsWith("\n"), `${pages} pages: a record cut short:\n${text}`);
      for (const line of text.split("\n").filter(Boolean))
        assert.doesNotThrow(() => JSON.parse(line), `${pages} pages: a partial line: ${line}`);
      await inNs("rm", [filler]);
      const down = await ns.run(process.execPath, [FIXTURE, "down", world, lab]);
      assert.equal(down.exitCode, 0, `${pages} pages: down\n${down.stdout}\n${down.stderr}`);
      assert.deepEqual(await readdir(world), [], `${pages} pages: left in the world after down`);
      await inNs("umount", [lab]);
    }
    assert.ok(failed.length >= 2, `only ${failed.length} runs ran out of space: ${failed}`);
  } finally {
    await ns.destroy();
    await t.cleanup();
  }
});
