// The lab's lock under signals, for real: a terminal's Ctrl-C reaches aplspawn's whole process
// group, and the lock must outlive it until the run has ended, rollback included. (Found with the
// lock held by a `flock` helper in that group: ^C killed it, and a second `run up` took the lock
// while the first still rolled back, both working on one journal.)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { execa } from "execa";
import { afterPurge, assertAsBefore, crash, labTest, watch } from "../support/fault-lab.js";
import { CLI, withoutSudo } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

const STARTED = /"id":"container\.nspawn\[[^\]]+\]","title":"[^"]*","state":"changed"/;

/** The PIDs of the processes that have the file at path open (any descriptor). */
async function openersNow(path: string): Promise<number[]> {
  const want = await stat(path);
  const out: number[] = [];
  for (const pid of (await readdir("/proc")).filter((n) => /^\d+$/.test(n))) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const s = await stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
      if (s && s.ino === want.ino && s.dev === want.dev) {
        out.push(Number(pid));
        break;
      }
    }
  }
  return out.sort((a, b) => a - b);
}

/**
 * The processes that hold `path` open, seen twice 300 ms apart: a child aplspawn has forked and not
 * yet exec'd shares its descriptors for that moment (close-on-exec closes them at the exec), and a
 * look at /proc can catch one on a loaded host; a process that keeps the file (a helper beside
 * aplspawn, a container's nspawn that inherited the descriptor) is in both looks.
 */
async function openers(path: string): Promise<number[]> {
  const first = await openersNow(path);
  await delay(300);
  const again = await openersNow(path);
  return first.filter((p) => again.includes(p));
}

/** Whether the lock at path is held by someone (flock -n from here conflicts). */
async function held(path: string): Promise<boolean> {
  const r = await execa("flock", ["--nonblock", "--conflict-exit-code", "75", path, "true"], {
    reject: false,
  });
  assert.ok(r.exitCode === 0 || r.exitCode === 75, `flock on ${path}: ${r.exitCode} ${r.stderr}`);
  return r.exitCode === 75;
}

/** The state letter of a process (/proc/PID/stat field 3), undefined when it is gone. */
async function procState(pid: number): Promise<string | undefined> {
  const s = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return s?.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3);
}

/**
 * The state of pid once a SIGSTOP sent to it has taken effect: the signal is delivered when the
 * process next runs, so right after kill() it can still read R. Gives what it last saw after 5 s.
 */
async function stoppedState(pid: number): Promise<string | undefined> {
  let st: string | undefined;
  await waitFor(
    async () => {
      st = await procState(pid);
      return st === undefined || st === "T";
    },
    5000,
    50,
  );
  return st;
}

labTest(
  "Ctrl-C to the process group of a `run up` starting its containers: the lock stays aplspawn's own through the rollback, a second `run up` is refused naming it, and the lock is free once the rollback has ended",
  "lks",
  81,
  async (lab, { image, start, track }) => {
    const lock = join(lab.workdir, "lks", "lock");
    // As a terminal starts it: a process group of its own, which Ctrl-C signals as a whole.
    const grouped = {
      ...lab,
      spawnCli: (args: readonly string[], env: Record<string, string> = {}) => {
        const [cmd, a] = lab.ns.wrap(process.execPath, [CLI, "-c", lab.config, ...args]);
        return spawn(cmd, a, {
          cwd: lab.dir,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...withoutSudo(process.env), ...env },
          detached: true,
        });
      },
    };
    const w = await watch(grouped, ["--json", "run", "up"]);
    assert.ok(await w.until(STARTED), `containers started:\n${w.stderr.join("\n")}`);

    // No helper to kill: the only process holding the lock's file is aplspawn itself (not a
    // `flock` beside it, not a container's systemd-nspawn that inherited the descriptor).
    assert.deepEqual(await openers(lock), [w.pid], "the lock's file is open in aplspawn alone");
    assert.ok(await held(lock), "the lock is held");

    process.kill(-w.pid, "SIGINT");
    assert.ok(await w.until(/interrupted: stopping and rolling back/), "the SIGINT was seen");
    // Stopped in the middle of its rollback, so the second run below surely comes during it.
    process.kill(w.pid, "SIGSTOP");
    assert.equal(await stoppedState(w.pid), "T", "the first run was stopped before its rollback ended");
    assert.deepEqual(await openers(lock), [w.pid], "the lock's file is still open in aplspawn alone");
    assert.ok(await held(lock), "the lock is still held during the rollback");

    const second = await watch(lab, ["--json", "run", "up"]);
    const through = await second.until(/"event":"task"/, 120_000);
    if (through) await crash(second);
    const r2 = await second.done;
    track(r2);
    assert.ok(!through, `a second run up went on while the first rolled back:\n${r2.stdout}`);
    assert.equal(r2.exitCode, 1, `the second run up: ${r2.stderr}`);
    assert.match(r2.stderr, new RegExp(`locked by PID ${w.pid} \\(aplspawn run up`));

    process.kill(w.pid, "SIGCONT");
    const r = await w.done;
    const loops = track(r);
    assert.equal(r.exitCode, 130, `exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /"event":"summary"/, "the rollback ran to its end");
    // Let go with the run's end: its file goes with it.
    await assert.rejects(stat(lock), "the lock's file is gone after the run");

    // Free for the next run: run down takes it.
    const down = await lab.cli(["--json", "run", "down", "--purge"]);
    assert.equal(down.exitCode, 0, `run down after the rollback: ${down.stderr}`);
    await assertAsBefore(lab, start, "after the interrupted run and run down", {
      loops: [...loops, ...track(down)],
      image,
      allowed: afterPurge("lks"),
    });
  },
);
