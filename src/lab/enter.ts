// How `aplspawn exec` runs a command in a container: the container's own systemd starts it, as
// `machinectl shell` has machined ask it, so the command is one of the container's processes from
// its birth and by construction gets what the init's children get, nothing more: nspawn's seccomp
// filter (a filter is inherited and never lifted), the init's capability bounding set, the
// container's cgroup (a transient service of its own, aplspawn-exec-<random>.service), its PID
// namespace; and no_new_privs (NoNewPrivileges=yes). No host binary runs in the container's PID
// namespace, where its /proc/PID/exe or map_files could be opened and written (runc's CVE-2019-5736:
// entering with the host's nsenter let a `#!/proc/self/exe` program re-run nsenter).
//
// The parts, host side:
// - this process (aplspawn): holds the caller's terminal and relays it; it never enters anything,
//   never passes a descriptor of the caller's on, and stays in its own cgroup.
// - the helper (exec-helper.ts, python3, its own session so the terminal's signals are not its):
//   pidfd of the init (the journaled one, checked by start time), setns into every namespace of the
//   init but its PID namespace, root of the container (its user namespace's with privateUsers), no
//   capabilities and not dumpable once connected. The container cannot see it (another PID
//   namespace); a peer that asks the socket for the pidfd of its writer (SO_PASSPIDFD) gets a process
//   whose namespaces are the container's own and which holds nothing of the host's.
// - the connector (exec-connector.ts): systemd refuses a private connection whose peer it cannot see,
//   so a process in the container's PID namespace must connect. It is a static program of ours run
//   from a sealed memfd, without capabilities: nothing of the host is mapped in it, its exe cannot
//   be written. It hands the socket to the helper and exits.
// The helper speaks D-Bus (AUTH EXTERNAL as root) to /run/systemd/private and asks for the command
// with StartTransientUnit, its stdin/stdout/stderr descriptors of the helper's: a pty opened in the
// container's own devpts (its master relayed; the caller's terminal in raw mode, window size passed
// on), as machinectl shell and `docker exec -t` do, when aplspawn runs on a terminal; else three
// pipes, so output and exit code work in scripts. The unit's exit status comes from systemd's
// signals; the unit is collected when it ends (CollectMode=inactive-or-failed), so nothing is left.
// An `init: script` container has no systemd to ask: exec refuses it (ssh works there).
import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { ExitError } from "../errors.js";
import type { Host } from "../host/host.js";
import { EXEC_HELPER } from "./exec-helper.js";

/** What the helper is asked to run, and where. */
export interface ExecRequest {
  /** The container's init (its leader), and its start time (/proc/PID/stat field 22). */
  leader: number;
  start: number;
  /** A pty (with its first size), or pipes. */
  tty: boolean;
  rows: number;
  cols: number;
  /** The command's whole environment ("K=V"), and its argv (argv[0] looked up in PATH inside). */
  env: string[];
  argv: string[];
}

/** The capability numbers in a /proc/PID/status mask ("CapBnd: 000001ffffffffff"). */
export function capabilities(status: string, field = "CapBnd"): number[] {
  const hex = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, "m").exec(status)?.[1];
  if (!hex) throw new Error(`no ${field} in the process status`);
  const mask = BigInt(`0x${hex}`);
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(i);
  return out;
}

/** The environment of the command: nothing of ours, only what a root login inside has. */
function cleanEnv(term: string | undefined): string[] {
  return [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "USER=root",
    "LOGNAME=root",
    ...(term && /^[\w.+-]+$/.test(term) ? [`TERM=${term}`] : []),
  ];
}

/** The request to run `command` in the container whose init is `leader`. */
export async function execRequest(
  host: Host,
  leader: number,
  command: readonly string[],
  terminal: { term: string | undefined; rows: number; cols: number } | undefined,
): Promise<ExecRequest> {
  const stat = await host.fs.readFile(`/proc/${leader}/stat`);
  const start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  if (!Number.isSafeInteger(start)) throw new Error(`no start time in /proc/${leader}/stat`);
  return {
    leader,
    start,
    tty: terminal !== undefined,
    rows: terminal?.rows ?? 0,
    cols: terminal?.cols ?? 0,
    env: cleanEnv(terminal?.term),
    argv: [...command],
  };
}

/** Signals that end the command (forwarded to it as they come): Ctrl-C off a terminal, kill, hangup. */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Run the request with this process's stdin/stdout/stderr relayed; resolves with the command's exit
 * code. A terminal (stdin and stdout) is put in raw mode and given back as it was.
 */
export function runInContainer(req: ExecRequest): Promise<number> {
  const stdin = process.stdin;
  const raw = req.tty && stdin.isTTY;
  const child = spawn("python3", ["-I", "-S", "-B", "-c", EXEC_HELPER, JSON.stringify(req)], {
    stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
    // Its own session: the terminal's Ctrl-C reaches aplspawn only, which passes it on.
    detached: true,
  });
  const { stdin: toCmd, stdout: fromOut, stderr: fromErr } = child;
  const control = child.stdio[3] as Writable | null;
  const status = child.stdio[4] as Readable | null;
  if (!toCmd || !fromOut || !fromErr || !control || !status) throw new Error("helper without its pipes");
  let lines = "";
  status.setEncoding("utf8");
  status.on("data", (s: string) => {
    // A few short lines: more is not the helper's.
    if (lines.length < 8192) lines += s;
  });
  const send = (line: string) => {
    if (control.writable) control.write(`${line}\n`);
  };
  const restore = () => {
    if (raw) stdin.setRawMode(false);
  };
  if (raw) {
    stdin.setRawMode(true);
    process.once("exit", restore);
  }
  // Pipes break when the helper ends; what was not delivered has nowhere to go.
  for (const s of [toCmd, control]) s.on("error", () => undefined);
  stdin.pipe(toCmd);
  fromOut.pipe(process.stdout, { end: false });
  fromErr.pipe(process.stderr, { end: false });
  // A reader of our output that went away (`| head -1`): the helper's writes fail, it ends the command.
  const outGone = () => fromOut.destroy();
  process.stdout.once("error", outGone);
  const resize = () => send(`winsize ${process.stdout.rows} ${process.stdout.columns}`);
  if (req.tty) process.stdout.on("resize", resize);
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    // Before the command runs, or a third time: the helper is ended at once.
    if (!lines.startsWith("started ") || signals >= 3) child.kill("SIGKILL");
    else send(`signal ${constants.signals[name]}`);
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  return new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      for (const s of FORWARDED) process.off(s, onSignal);
      process.stdout.off("resize", resize);
      process.stdout.off("error", outGone);
      stdin.unpipe(toCmd);
      stdin.pause();
      restore();
      process.off("exit", restore);
      const last = lines.trimEnd().split("\n").pop() ?? "";
      const exit = /^exit (\d+)$/.exec(last);
      if (exit) return resolve(Number(exit[1]));
      const error = /^error (\d+) (.*)$/.exec(last);
      if (error) return reject(new ExitError(error[2] ?? "", Number(error[1])));
      if (signal === "SIGKILL" && signals > 0) return reject(new ExitError("interrupted", 130));
      reject(new ExitError(`exec's helper ended (${signal ?? `exit code ${code}`}) without a word`));
    });
  });
}
