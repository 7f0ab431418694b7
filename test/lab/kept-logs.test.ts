// The logs a failed run keeps, without root: a container's log moved into its run's directory
// (0700, the file 0600), the newest runs kept only, a link refused; container.dirs keeps the log in
// the rollback of a failed run and says where, and not in a teardown nor from an older journal.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { runContext } from "../../src/host/run-scope.js";
import { KEPT_RUNS, keepLog, keptLog, runDirName } from "../../src/lab/kept-logs.js";
import type { TaskContext } from "../../src/runner/task.js";
import { containerDirs } from "../../tasks/container/dirs.js";
import { withTempDir } from "../support/ns.js";

test("keepLog moves a log into its run's directory (0700, the file 0600) and keeps the newest runs only", () =>
  withTempDir(async (d) => {
    const h = realHost();
    const logsDir = join(d.path, "lab", "logs");
    const logFile = join(d.path, "nspawn.log");
    const runs: string[] = [];
    for (let i = 0; i < KEPT_RUNS + 2; i++) {
      await writeFile(logFile, `run ${i}\n`, { mode: 0o644 });
      const runId = `2026-11-30T20:${String(i).padStart(2, "0")}:00.000Z-abc`;
      runs.push(runDirName(runId));
      const kept = await keepLog(h, { logFile, logsDir, runId, name: "web1" });
      assert.equal(kept, join(logsDir, runDirName(runId), "web1.log"));
      assert.equal(await readFile(kept!, "utf8"), `run ${i}\n`);
      assert.equal((await stat(kept!)).mode & 0o777, 0o600);
      assert.equal((await stat(join(logsDir, runDirName(runId)))).mode & 0o777, 0o700);
    }
    assert.equal(runDirName("2026-11-30T20:01:00.000Z-abc"), "2026-11-30T200100.000Z-abc");
    await assert.rejects(stat(logFile), "the log was moved");
    assert.deepEqual((await readdir(logsDir)).sort(), runs.slice(-KEPT_RUNS), "the oldest runs went");
    assert.equal(await keepLog(h, { logFile, logsDir, runId: runs[0]!, name: "web1" }), undefined, "no log");
    assert.equal(await keptLog(h, logsDir, "web1"), join(logsDir, runs.at(-1)!, "web1.log"));
    assert.equal(await keptLog(h, logsDir, "web2"), undefined);
    // A link where the log should be is refused, not followed.
    await writeFile(join(d.path, "target"), "x\n");
    await symlink(join(d.path, "target"), logFile);
    await assert.rejects(
      keepLog(h, { logFile, logsDir, runId: "2026-12-01T00:00:00.000Z-abc", name: "web1" }),
      /symbolic link/,
    );
  }));

/** A task context on the real host, recording its notes. */
function context(failedRun?: { id: string; notes: string[] }) {
  const infos: string[] = [];
  const ctx: TaskContext = {
    ...runContext(realHost()),
    tty: false,
    info: (m) => infos.push(m),
    progress: () => undefined,
    ...(failedRun ? { failedRun: { id: failedRun.id, note: (l: string) => failedRun.notes.push(l) } } : {}),
  };
  return { ctx, infos };
}

test("container.dirs: the rollback of a failed run keeps the container's log and says where; a teardown deletes it", () =>
  withTempDir(async (d) => {
    const lab = join(d.path, "lab");
    const params = (name: string) => ({
      name,
      dir: join(lab, "containers", name),
      work: join(lab, "containers", name, "work"),
      merged: join(d.path, "machines", name),
      logFile: join(lab, "containers", name, "nspawn.log"),
      keptLogs: join(lab, "logs"),
    });
    for (const name of ["a", "b"]) {
      const p = params(name);
      for (const dir of [p.dir, p.work, p.merged]) await mkdir(dir, { recursive: true });
      await writeFile(p.logFile, `--- aplspawn: starting ${name}\nFailed to boot\n`);
    }
    const failed = { id: "2026-11-30T20:45:00.123Z-0a1b2c", notes: [] as string[] };
    const f = context(failed);
    await containerDirs.rollback!(f.ctx, { params: params("a"), intent: { existed: [] }, result: undefined });
    const runDir = join(lab, "logs", "2026-11-30T204500.123Z-0a1b2c");
    assert.equal(await readFile(join(runDir, "a.log"), "utf8"), "--- aplspawn: starting a\nFailed to boot\n");
    assert.deepEqual(failed.notes, [`the logs of the containers this run rolled back are kept in ${runDir}`]);
    assert.deepEqual(f.infos, [`kept its log as ${join(runDir, "a.log")}`]);
    await assert.rejects(stat(params("a").dir), "the container's directory still goes");

    const t = context();
    await containerDirs.rollback!(t.ctx, { params: params("b"), intent: { existed: [] }, result: undefined });
    await assert.rejects(stat(params("b").dir));
    assert.deepEqual(await readdir(runDir), ["a.log"], "a teardown keeps nothing");
    assert.deepEqual(t.infos, []);
    // A journal of an older aplspawn names no place to keep logs: the log goes, as before.
    const old = params("c");
    await mkdir(old.work, { recursive: true });
    await writeFile(old.logFile, "x\n");
    const { keptLogs: _, ...legacy } = old;
    await containerDirs.rollback!(context(failed).ctx, {
      params: legacy,
      intent: undefined,
      result: undefined,
    });
    await assert.rejects(stat(old.logFile));
  }));
