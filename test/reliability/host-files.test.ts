// Files aplspawn writes on the host never follow a link someone planted at the name it writes to
// first: root's atomic writes (Host.fs.writeFile) and the owner's writes in their directories.
import assert from "node:assert/strict";
import { chmod, chown, lstat, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { realHost } from "../../src/host/real-host.js";
import { skip, tempDir } from "../support/ns.js";

const require = createRequire(import.meta.url);
const DRIVE = resolve(import.meta.dirname, "../support/bin/owner-write.js");

// node:crypto's randomBytes as every module sees it, returning `fixed` bytes on its first call
// (the temp name an attacker guessed), the real ones after.
async function withFirstRandom<T>(fixed: number, f: () => Promise<T>): Promise<T> {
  const crypto = require("node:crypto") as typeof import("node:crypto");
  const real = crypto.randomBytes;
  let calls = 0;
  (crypto as { randomBytes: unknown }).randomBytes = (n: number) =>
    calls++ === 0 ? Buffer.alloc(n, fixed) : real(n);
  syncBuiltinESMExports();
  try {
    return await f();
  } finally {
    (crypto as { randomBytes: unknown }).randomBytes = real;
    syncBuiltinESMExports();
  }
}

test("an atomic write does not follow a link planted at its temp name, and sets the mode through its descriptor", async () => {
  const d = await tempDir("aplspawn-write-");
  try {
    const victim = join(d.path, "victim");
    await writeFile(victim, "untouched\n", { mode: 0o644 });
    await chmod(victim, 0o644);
    const target = join(d.path, "record.json");
    // The temp names the write would use with random bytes all 0xab (4 or 8 of them): links to the victim.
    for (const n of [4, 8]) await symlink(victim, join(d.path, `.record.json.${"ab".repeat(n)}.tmp`));
    await withFirstRandom(0xab, () => realHost().fs.writeFile(target, "new\n", 0o600));
    assert.equal(await readFile(victim, "utf8"), "untouched\n", "the victim was written through the link");
    assert.equal((await stat(victim)).mode & 0o777, 0o644, "the victim's mode was changed through the link");
    const st = await lstat(target);
    assert.ok(st.isFile(), "the record is a file of its own, not the planted link");
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(await readFile(target, "utf8"), "new\n");
  } finally {
    await d.cleanup();
  }
});

const OWNER = 61234;

test("the owner's write in a directory another user can write does not follow links planted at guessable names", {
  skip,
}, async () => {
  const d = await tempDir("aplspawn-ownerwrite-");
  try {
    await chmod(d.path, 0o755);
    // The owner's home, with a file of theirs that the attacker wants written.
    const home = join(d.path, "home");
    await mkdir(home, { mode: 0o700 });
    const victim = join(home, ".bashrc");
    await writeFile(victim, "untouched\n", { mode: 0o644 });
    await chown(home, OWNER, OWNER);
    await chown(victim, OWNER, OWNER);
    // A directory the owner shares with another user (nobody here): where the inventory goes.
    const shared = join(d.path, "shared");
    await mkdir(shared);
    await chmod(shared, 0o777);
    const file = join(shared, "inventory.txt");
    // The attacker, nobody, plants links at the names a writer might use: "<file>.aplspawn-<PID>"
    // for every PID the writer can get in its fresh PID namespace.
    const plant = `const [victim, file] = process.argv.slice(1);
      for (let i = 1; i <= 1000; i++) require("node:fs").symlinkSync(victim, file + ".aplspawn-" + i);`;
    const p = await execa(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", plant, "--", victim, file],
      { reject: false },
    );
    assert.equal(p.exitCode, 0, p.stderr);
    const r = await execa(
      "unshare",
      [
        "--pid",
        "--fork",
        "--kill-child",
        process.execPath,
        DRIVE,
        "--aplspawn-owner-write",
        file,
        "640",
        String(OWNER),
        String(OWNER),
        home,
        "[lab]\nweb1\n",
      ],
      { reject: false },
    );
    assert.equal(r.exitCode, 0, `the write as the owner: ${r.stderr}`);
    assert.equal(
      await readFile(victim, "utf8"),
      "untouched\n",
      "the owner's file was written through a link",
    );
    const st = await lstat(file);
    assert.ok(st.isFile(), "the inventory is a file, not a planted link");
    assert.equal(st.uid, OWNER, "written as the owner");
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal(await readFile(file, "utf8"), "[lab]\nweb1\n");
  } finally {
    await d.cleanup();
  }
});
