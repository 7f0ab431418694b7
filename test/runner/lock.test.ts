// The lock (src/host/lock.ts) under contention, for real: processes and async callers within
// them taking it at once never hold it together (a counter incremented under the lock loses no
// update, a marker only one holder may create is never found). The lock is the kernel's (flock):
// a holder killed holding it lets go with its death, and nothing is ever taken over. (Found with
// the PID-file lock before it: a lock read while its file was being created or removed was taken
// for a dead owner's and taken over, and the lock of whoever came next was removed.)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { ExitError } from "../../src/errors.js";
import { acquireLock, HOST_LOCK_DIR, HOST_LOCK_OPTIONS, withHostLock } from "../../src/host/lock.js";
import { realHost } from "../../src/host/real-host.js";
import { imageLockPath } from "../../src/image/store-lock.js";
import { isRoot, skip, tempDir } from "../support/ns.js";
import { rounds } from "../support/rounds.js";
import { waitUntil } from "../support/wait.js";

const FIXTURE = join(import.meta.dirname, "../support/bin/lock-stress.js");
const TAKES = rounds(20, 50);

test(`a holder SIGKILLed holding the lock, then six processes taking it ${TAKES} times each (five callers at once): one holder at a time, no update lost`, async () => {
  const d = await tempDir("aplspawn-lock-");
  try {
    const lock = join(await labDirIn(d.path), "lock");
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
        execa(process.execPath, [FIXTURE, "--aplspawn-lock-stress", lock, counter, String(TAKES)], {
          reject: false,
        }),
      ),
    );
    for (const r of runs) assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await readFile(counter, "utf8"), String(6 * TAKES));
  } finally {
    await d.cleanup();
  }
});

// A lab's directory in dir, as the runner makes it: a lock's directory must be root's alone (0700).
async function labDirIn(dir: string): Promise<string> {
  const lab = join(dir, "lab");
  await mkdir(lab, { mode: 0o700 });
  return lab;
}

// The lock paths in aplspawn's code (the compiled files, on lines that say .lock): string literals
// ending in .lock, and the fixed start of templates (`/run/aplspawn/image-${…}.lock` gives
// "/run/aplspawn/image-").
async function lockPathsInCode(): Promise<{ literal: string[]; all: string[] }> {
  const literal = new Set<string>();
  const all = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (p.endsWith(".js"))
        for (const line of (await readFile(p, "utf8")).split("\n").filter((l) => l.includes(".lock")))
          for (const m of line.matchAll(/["'`](\/[^"'`$\s]*)(\$\{|["'`])/g)) {
            if (m[2] !== "${" && !m[1]!.endsWith(".lock")) continue;
            all.add(m[1]!);
            if (m[2] !== "${") literal.add(m[1]!);
          }
    }
  };
  await walk(resolve(import.meta.dirname, "../../src"));
  return { literal: [...literal].sort(), all: [...all].sort() };
}

// flock(1) as nobody on path, at once: what it exits with and says.
function asNobody(path: string) {
  return execa(
    "setpriv",
    [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "flock",
      "--nonblock",
      "--conflict-exit-code",
      "75",
      path,
      "true",
    ],
    { reject: false },
  );
}

test("every host-wide lock in the code lives in /run/aplspawn", async () => {
  const { all } = await lockPathsInCode();
  assert.ok(all.length >= 5, `the host-wide locks were found: ${all.join(", ")}`);
  for (const p of all) assert.equal(dirname(p), HOST_LOCK_DIR, `${p} is not in ${HOST_LOCK_DIR}`);
});

// Run in a mount namespace of its own with a tmpfs on /run: HOST_LOCK_DIR is the script's alone,
// whatever labs of other tests lock meanwhile.
const DIR_SCRIPT = `
import { existsSync } from "node:fs";
import { HOST_LOCK_DIR, HOST_LOCK_OPTIONS, withHostLock } from ${JSON.stringify(resolve(import.meta.dirname, "../../src/host/lock.js"))};
import { realHost } from ${JSON.stringify(resolve(import.meta.dirname, "../../src/host/real-host.js"))};
const host = realHost();
const take = (name, waitMs) => host.lockFile(HOST_LOCK_DIR + "/" + name, { waitMs, ...HOST_LOCK_OPTIONS });
const out = { before: existsSync(HOST_LOCK_DIR) };
const a = await take("a.lock", 0);
const b = await take("b.lock", 0);
await a.release();
out.afterFirst = existsSync(HOST_LOCK_DIR);
const waiting = take("b.lock", 10000);
await new Promise((r) => setTimeout(r, 300));
await b.release();
const c = await waiting;
out.waiterTook = Boolean(c);
out.whileHeld = existsSync(HOST_LOCK_DIR);
await c.release();
out.afterLast = existsSync(HOST_LOCK_DIR);
await withHostLock(host, HOST_LOCK_DIR + "/holds.lock", "test", undefined, async () => {
  out.inside = existsSync(HOST_LOCK_DIR);
});
out.afterHostLock = existsSync(HOST_LOCK_DIR);
// Takers of different locks at once, over and over: the directory comes and goes under them.
const failed = [];
let rounds = 0;
await Promise.all(["w0", "w1", "w2", "w3"].map(async (w) => {
  for (let i = 0; i < 150; i++)
    await withHostLock(host, HOST_LOCK_DIR + "/" + w + ".lock", "test", undefined, async () => { rounds++; })
      .catch((e) => failed.push(String(e.message ?? e)));
}));
out.rounds = rounds;
out.failed = [...new Set(failed)];
out.afterAll = existsSync(HOST_LOCK_DIR);
console.log(JSON.stringify(out));
`;

test("the host-wide lock directory goes with the last lock released in it; a taker whose directory went makes it again, 4 takers at once 150 times each", {
  skip,
}, async () => {
  const r = await execa(
    "unshare",
    [
      "--mount",
      "sh",
      "-c",
      'mount --make-rprivate / && mount -t tmpfs -o mode=0755 tmpfs /run && exec node --input-type=module -e "$1"',
      "sh",
      DIR_SCRIPT,
    ],
    { reject: false },
  );
  assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout), {
    before: false,
    // Another lock's file keeps it.
    afterFirst: true,
    // Waiting on b, whose holder removed its file and the directory: made again, and taken.
    waiterTook: true,
    whileHeld: true,
    afterLast: false,
    inside: true,
    afterHostLock: false,
    rounds: 600,
    failed: [],
    afterAll: false,
  });
});

test("nobody cannot open, take or block any of aplspawn's locks (the lab's and the host-wide ones), free or held", {
  skip,
}, async () => {
  const host = realHost();
  const d = await tempDir("aplspawn-lock-");
  let keeper: Awaited<ReturnType<typeof host.lockFile>>;
  try {
    // A lab's directory, as the runner makes it (0700).
    const labLock = join(await labDirIn(d.path), "lock");
    const tried: string[] = [];
    const refused = async (path: string, when: string) => {
      const r = await asNobody(path);
      tried.push(path);
      assert.ok(
        r.exitCode !== 0 && r.exitCode !== 75 && /Permission denied/.test(r.stderr),
        `nobody reached ${path} (${when}): flock exited ${r.exitCode}: ${r.stderr}`,
      );
    };
    const { literal } = await lockPathsInCode();
    // The host-wide directory goes with the last lock released in it: a lock of this test's keeps
    // it there, as another lab's lock does, so that each free lock is tried in it.
    keeper = await host.lockFile(join(HOST_LOCK_DIR, `test-keeper-${process.pid}.lock`), {
      waitMs: 0,
      ...HOST_LOCK_OPTIONS,
    });
    assert.ok(keeper, "the keeper lock");
    // An image's lock is named for the image file (src/image/store-lock.ts).
    for (const path of [...literal, imageLockPath(join(d.path, "image.img"))]) {
      await withHostLock(host, path, "test", undefined, () => refused(path, "held by root"));
      // Its directory is there (the keeper's), the file is not.
      await refused(path, "free");
      // Nothing of nobody's stays in the way: root takes it again. Not "at once": a host-wide lock
      // (loops.lock) is also taken a moment by labs of other tests running beside this one.
      const again = await host.lockFile(path, { waitMs: 30_000, removeOnRelease: true });
      assert.ok(again, `root takes ${path} again after nobody tried`);
      await again.release();
    }
    await refused(labLock, "free");
    const l = await acquireLock(host, labLock, "test");
    await refused(labLock, "held by root");
    await l.release();
    assert.ok(tried.length >= 6);
    const dir = await stat(HOST_LOCK_DIR);
    assert.equal(dir.uid, 0, `${HOST_LOCK_DIR} is root's`);
    assert.equal(dir.mode & 0o777, 0o700, `${HOST_LOCK_DIR} is 0700`);
  } finally {
    await keeper?.release();
    await d.cleanup();
  }
});

test("a lock's directory must be ours alone: one reachable by others, another user's, or a link is refused", async () => {
  const host = realHost();
  const d = await tempDir("aplspawn-lockdir-");
  try {
    const open = join(d.path, "open");
    await mkdir(open, { mode: 0o755 });
    await chmod(open, 0o755);
    await assert.rejects(host.lockFile(join(open, "x.lock"), { waitMs: 0 }), /mode 0755\) is not .*alone/);
    await assert.rejects(acquireLock(host, join(open, "lock"), "t"), ExitError);
    const link = join(d.path, "link");
    const mine = join(d.path, "mine");
    await mkdir(mine, { mode: 0o700 });
    await symlink(mine, link);
    await assert.rejects(host.lockFile(join(link, "x.lock"), { waitMs: 0 }), /is a symbolic link/);
    if (isRoot) {
      const theirs = join(d.path, "theirs");
      await mkdir(theirs, { mode: 0o700 });
      await chown(theirs, 65534, 65534);
      await assert.rejects(host.lockFile(join(theirs, "x.lock"), { waitMs: 0 }), /owner uid 65534/);
    }
    // Made when missing, 0700; a link at the lock file itself is not followed.
    const made = join(d.path, "made");
    const l = await host.lockFile(join(made, "x.lock"), { waitMs: 0, removeOnRelease: true });
    assert.ok(l);
    assert.equal((await stat(made)).mode & 0o777, 0o700);
    await l.release();
    await symlink(join(d.path, "elsewhere"), join(mine, "y.lock"));
    await assert.rejects(host.lockFile(join(mine, "y.lock"), { waitMs: 0 }), /ELOOP|symbolic link/);
    await assert.rejects(stat(join(d.path, "elsewhere")), "nothing was made through the link");
  } finally {
    await d.cleanup();
  }
});

test("flock(1) killed by PID while it waits for a lock: the take fails, it never goes on unlocked", async () => {
  const host = realHost();
  const d = await tempDir("aplspawn-lockwait-");
  const path = join(await labDirIn(d.path), "x.lock");
  // Someone else holds it for the whole test.
  const holder = spawn("flock", [path, "sleep", "60"], { stdio: "ignore" });
  try {
    await waitUntil(() => held(path), "the lock to be held");
    let ran = false;
    const take = withHostLock(host, path, "test", undefined, async () => {
      ran = true;
    });
    // The flock(1) this process started to wait for it, killed.
    let helper: number | undefined;
    await waitUntil(async () => {
      helper = await childNamed("flock", holder.pid);
      return helper !== undefined;
    }, "the flock helper to start");
    process.kill(helper!, "SIGKILL");
    await assert.rejects(take, /Cannot take the lock/);
    assert.equal(ran, false, "nothing ran without the lock");
  } finally {
    holder.kill("SIGKILL");
    await d.cleanup();
  }
});

// Whether someone holds the lock at path (flock -n from here conflicts).
async function held(path: string): Promise<boolean> {
  return (await execa("flock", ["-n", "-E", "75", path, "true"], { reject: false })).exitCode === 75;
}

// A child of this process running `name`, other than `not`.
async function childNamed(name: string, not?: number): Promise<number | undefined> {
  for (const pid of (await readdir("/proc")).filter((n) => /^\d+$/.test(n))) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (comm === name && ppid === process.pid && Number(pid) !== not) return Number(pid);
  }
  return undefined;
}
