// fs.inotify.max_user_instances is host-wide, and booted containers need more than Debian's 128 (a
// systemd of its own each). Test runs (test/run.mjs) and the benches raise it for as long as they
// run; runs side by side share the raise: a record in /run names the value found by the first and
// the processes holding the raise, and the last one to let go puts the value back (each putting back
// the value it found left 8192 behind when the first ended before the second, or 128 under the
// second's booting containers).
// Each change of the record is made under a lock file beside it and written whole (a temporary file
// renamed over it): a reader that met another's write half done took the record for missing, and
// recorded the raised 8192 as the value to put back (seen: 8192 left after three cluster files had
// booted their hosts at once).
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";

/** The host's limit (test/run.mjs checks the run leaves it as the raise set it). */
export const LIMIT = "/proc/sys/fs/inotify/max_user_instances";
/** The shared record of the raise (test/run.mjs leaves it out of what a run must not leave in /run). */
export const RAISE = "/run/.aplspawn-test-inotify.json";
const RAISED = 8192;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Where the limit and the record are (tests of this file point them at files of their own). */
export interface RaiseFiles {
  limit: string;
  record: string;
}

const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Run f holding the record's lock: a file made exclusively, naming its holder; a dead holder's is taken over. */
function locked<T>(record: string, f: () => T): T {
  const lock = `${record}.lock`;
  for (let tries = 0; ; tries++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let text: string;
      try {
        text = readFileSync(lock, "utf8");
      } catch {
        continue; // released meanwhile: try again
      }
      const holder = Number(text.trim() || Number.NaN);
      // Stale: its holder is gone, or has held it 10 s (the section it guards takes microseconds;
      // a holder killed before it wrote its PID leaves an empty file). Two waiters that both find
      // it stale may both remove it, the second taking the first's new lock: only after a holder
      // died inside that section.
      if ((Number.isInteger(holder) && !alive(holder)) || tries > 2000) rmSync(lock, { force: true });
      else pause(5);
    }
  }
  try {
    return f();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** The shared record: the value first found, and the live holders other than this process. */
function readRaise(record: string): { original: string; pids: number[] } | undefined {
  let text: string;
  try {
    text = readFileSync(record, "utf8");
  } catch {
    return undefined;
  }
  let r: { original: unknown; pids: number[] };
  try {
    r = JSON.parse(text) as typeof r;
  } catch {
    // Written whole under the lock, a record is never half there; one that is (an older helper's)
    // must not be taken for missing, which would record the raised value as the one to put back.
    throw new Error(
      `${record} is no record of the inotify raise: put the limit back by hand (Debian's is 128) and remove it`,
    );
  }
  return { original: String(r.original), pids: r.pids.filter((p) => p !== process.pid && alive(p)) };
}

/** The record, replaced whole. */
function writeRaise(record: string, r: { original: string; pids: number[] }): void {
  const tmp = `${record}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(r));
  renameSync(tmp, record);
}

/**
 * Hold the raised limit (root only; a no-op otherwise). Returns the release: the last holder puts
 * back the value the first found.
 */
export function holdInotify(files: RaiseFiles = { limit: LIMIT, record: RAISE }): () => void {
  if (process.getuid?.() !== 0 || !existsSync(files.limit)) return () => undefined;
  locked(files.record, () => {
    const found = readRaise(files.record);
    const current = readFileSync(files.limit, "utf8").trim();
    // A record with no live holder was left by one that died holding the raise: its value is the one.
    const original = found ? found.original : current;
    writeRaise(files.record, { original, pids: [...(found?.pids ?? []), process.pid] });
    if (Number(current) < RAISED) writeFileSync(files.limit, String(RAISED));
  });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    locked(files.record, () => {
      const r = readRaise(files.record);
      if (r && r.pids.length > 0) return writeRaise(files.record, r);
      if (r) writeFileSync(files.limit, r.original);
      rmSync(files.record, { force: true });
    });
  };
}
