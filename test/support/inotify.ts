// fs.inotify.max_user_instances is host-wide, and booted containers need more than Debian's 128 (a
// systemd of its own each). Test runs (test/run.mjs) and the benches raise it for as long as they
// run; runs side by side share the raise: a record in /run names the value found by the first and
// the processes holding the raise, and the last one to let go puts the value back (each putting back
// the value it found left 8192 behind when the first ended before the second, or 128 under the
// second's booting containers).
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const LIMIT = "/proc/sys/fs/inotify/max_user_instances";
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

/** The shared record: the value first found, and the live holders other than this process. */
function readRaise(): { original: string; pids: number[] } | undefined {
  try {
    const r = JSON.parse(readFileSync(RAISE, "utf8")) as { original: unknown; pids: number[] };
    return { original: String(r.original), pids: r.pids.filter((p) => p !== process.pid && alive(p)) };
  } catch {
    return undefined;
  }
}

/**
 * Hold the raised limit (root only; a no-op otherwise). Returns the release: the last holder puts
 * back the value the first found.
 */
export function holdInotify(): () => void {
  if (process.getuid?.() !== 0 || !existsSync(LIMIT)) return () => undefined;
  const found = readRaise();
  const current = readFileSync(LIMIT, "utf8").trim();
  // A record with no live holder was left by one that died holding the raise: its value is the one.
  const original = found ? found.original : current;
  writeFileSync(RAISE, JSON.stringify({ original, pids: [...(found?.pids ?? []), process.pid] }));
  if (Number(current) < RAISED) writeFileSync(LIMIT, String(RAISED));
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const r = readRaise();
    if (r && r.pids.length > 0) return writeFileSync(RAISE, JSON.stringify(r));
    if (r) writeFileSync(LIMIT, r.original);
    rmSync(RAISE, { force: true });
  };
}
