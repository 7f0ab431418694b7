// Running commands on the real host: captured (execa: argv only, a timeout, cancellable) and
// detached (a container's nspawn, its console written to a log, bounded by a relay when asked).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  CommandError,
  type DetachedOptions,
  type ExecOptions,
  type ExecResult,
  formatCommand,
} from "./host.js";

const DEFAULT_TIMEOUT_MS = 60_000;

// execa is loaded on first use: short commands (--version, names) start faster.
let execaModule: Promise<typeof import("execa")> | undefined;

// An execa line transform that reports each line and passes it on unchanged.
function tap(onLine: (line: string) => void) {
  return function* (line: unknown) {
    onLine(String(line));
    yield line;
  };
}

/** Run a command with execa: argv only, a timeout, cancellable, errors with stderr. */
export async function exec(
  cmd: string,
  args: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const command = formatCommand(cmd, args);
  execaModule ??= import("execa");
  const { execa } = await execaModule;
  if (opts.signal?.aborted) throw new CommandError(command, undefined, "", "Command cancelled");
  const sub = execa(cmd, args, {
    reject: false,
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    forceKillAfterDelay: 3000,
    input: opts.input,
    stdin: opts.input === undefined ? "ignore" : "pipe",
    env: opts.env,
    stripFinalNewline: false,
    ...(opts.onLine ? { stdout: [tap(opts.onLine)], stderr: [tap(opts.onLine)] } : {}),
  });
  // Cancelling is ours, not execa's cancelSignal: Node 20 turns kill() of a child whose spawn just
  // failed (ENOENT, before its 'error' event) into kill(0, SIGTERM), a signal to our whole process
  // group (it ended `npm test` now and then: a missing command raced a failing task's cancel).
  // Only a process that really started (it has a PID) is killed.
  let cancelled = false;
  const cancel = () => {
    cancelled = true;
    if (typeof sub.pid === "number" && sub.pid > 0) sub.kill();
  };
  opts.signal?.addEventListener("abort", cancel, { once: true });
  const r = await sub.finally(() => opts.signal?.removeEventListener("abort", cancel));
  const stdout = String(r.stdout ?? "");
  const stderr = String(r.stderr ?? "");
  if (cancelled && r.failed)
    throw new CommandError(command, r.exitCode, stderr, "Command cancelled", { cause: r.cause });
  if (r.timedOut)
    throw new CommandError(
      command,
      r.exitCode,
      stderr,
      `Command timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`,
    );
  if (r.failed && r.exitCode === undefined) {
    const reason = r.code === "ENOENT" ? `Command not found: ${cmd}` : (r.shortMessage ?? "Command failed");
    throw new CommandError(command, undefined, stderr, reason, { cause: r.cause });
  }
  const exitCode = r.exitCode ?? 0;
  if (exitCode !== 0 && !opts.allowFail)
    throw new CommandError(command, exitCode, stderr, `Command failed with exit code ${exitCode}`);
  return { command, exitCode, stdout, stderr };
}
export async function spawnDetached(
  cmd: string,
  args: readonly string[],
  opts: DetachedOptions,
): Promise<number> {
  const log = await fs.open(opts.logFile, "a", 0o600);
  const out =
    opts.logMaxBytes === undefined ? undefined : await boundedLog(opts.logFile, log, opts.logMaxBytes);
  try {
    const fd = out?.fd ?? log.fd;
    const child = spawn(cmd, args, {
      detached: true, // own session: the CLI's Ctrl-C does not reach it
      stdio: ["ignore", fd, fd],
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve(child.pid ?? -1));
    });
    child.unref();
    return pid;
  } finally {
    await out?.close();
    await log.close();
  }
}

// The relay of a bounded log, one small process with no shell: the first $max bytes of its input to
// the log as they come (each read written at once; no stdio buffer holds them back), then, if there
// is more, a line saying so, and the rest read and dropped (the writer must never block on a full
// pipe: a container's console writes would stall). Reads are of fixed size, so a container writing
// without newlines cannot make it hold more than 64 KiB. It ends when the last writer has gone. Perl
// is Essential on Debian and Ubuntu (perl-base); the program is fixed, the bound comes as an argument.
const LOG_RELAY = `use strict;
my ($max, $n, $buf) = (shift, 0);
while (1) {
  my $r = sysread(STDIN, $buf, 65536);
  last unless $r;
  next if $n > $max;
  my $keep = $r < $max - $n ? $r : $max - $n;
  syswrite(STDOUT, $buf, $keep) if $keep > 0;
  $n += $keep;
  next if $keep == $r;
  syswrite(STDOUT, "\n--- aplspawn: console output beyond $max bytes dropped until the container starts again\n");
  $n = $max + 1;
}`;

// A FIFO beside the log (a blocking one: a socketpair, Node's "pipe", is non-blocking, and a reader
// would give up on EAGAIN), a relay reading it into the log in its own session, and the FIFO's write end
// for the command. The FIFO's name is gone before the command starts; the relay ends with it.
async function boundedLog(logFile: string, log: fs.FileHandle, maxBytes: number) {
  const fifo = join(dirname(logFile), `.${basename(logFile)}.${randomBytes(8).toString("hex")}.fifo`);
  await exec("mkfifo", ["-m", "600", fifo]);
  try {
    // Read-write first: it opens at once, and lets the ends below open without waiting for each other.
    const hold = await fs.open(fifo, fsConstants.O_RDWR | fsConstants.O_NOFOLLOW);
    try {
      const readEnd = await fs.open(fifo, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      try {
        const relay = spawn("perl", ["-e", LOG_RELAY, String(maxBytes)], {
          detached: true,
          stdio: [readEnd.fd, log.fd, "ignore"],
        });
        await new Promise<void>((resolve, reject) => {
          relay.once("error", reject);
          relay.once("spawn", resolve);
        });
        relay.unref();
      } finally {
        await readEnd.close();
      }
      return await fs.open(fifo, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW);
    } finally {
      await hold.close();
    }
  } finally {
    await fs.rm(fifo, { force: true });
  }
}
