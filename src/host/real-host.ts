// The real host: a thin layer over execa, node:fs and undici.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import { connect } from "node:net";
import { basename, dirname, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { Dispatcher } from "undici";
import {
  CommandError,
  type DetachedOptions,
  type ExecOptions,
  type ExecResult,
  type FileStat,
  formatCommand,
  type Host,
  type HostFs,
  type HostHttp,
  type HttpRetry,
  type ReadableFile,
  type WritableFile,
} from "./host.js";
import { lockFile } from "./lock-file.js";
import { rootFs } from "./root-fs.js";

const DEFAULT_TIMEOUT_MS = 60_000;
/** openWrite: bytes gathered before one writev, and written before a background fdatasync. */
const WRITE_BATCH = 4 * 1048576;
const SYNC_EVERY = 64 * 1048576;

// execa and undici are loaded on first use: short commands (--version, names) start faster.
let execaModule: Promise<typeof import("execa")> | undefined;
let undiciModule: Promise<typeof import("undici")> | undefined;

// An execa line transform that reports each line and passes it on unchanged.
function tap(onLine: (line: string) => void) {
  return function* (line: unknown) {
    onLine(String(line));
    yield line;
  };
}

/** Run a command with execa: argv only, a timeout, cancellable, errors with stderr. */
async function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
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

async function spawnDetached(cmd: string, args: readonly string[], opts: DetachedOptions): Promise<number> {
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

function canConnect(ip: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port, signal });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

// A new file of ours at a fresh name beside path (O_EXCL: never a file or a link found there,
// O_NOFOLLOW: not a dangling link either), its mode set through the descriptor (not by name, where
// something else may be by then; and exact, whatever the umask), then renamed over path.
const CREATE_NEW = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

async function writeAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  let tmp = "";
  let fh: fs.FileHandle | undefined;
  for (let tries = 1; !fh; tries++) {
    tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString("hex")}.tmp`);
    fh = await fs.open(tmp, CREATE_NEW, 0o600).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EEXIST" && tries < 5) return undefined;
      throw e;
    });
  }
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

async function syncDir(path: string): Promise<void> {
  const dir = await fs.open(path, fsConstants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

// Linux's dev_t: major in bits 8-19 and 32-63, minor in bits 0-7 and 20-31 (glibc's gnu_dev_major).
const devId = (d: bigint) =>
  `${((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)}:${(d & 0xffn) | ((d >> 12n) & ~0xffn)}`;
const seconds = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`;

function fileStat(s: import("node:fs").BigIntStats): FileStat {
  return {
    size: Number(s.size),
    isDirectory: s.isDirectory(),
    isFile: s.isFile(),
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    dev: Number(s.dev),
    ino: Number(s.ino),
    inoId: String(s.ino),
    devId: devId(s.dev),
    rdevId: devId(s.rdev),
    mtime: seconds(s.mtimeNs),
    ctime: seconds(s.ctimeNs),
  };
}

const realFs: HostFs = {
  readFile: (p) => fs.readFile(p, "utf8"),
  async readBytes(p, position, length) {
    const fh = await fs.open(p, "r");
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  },
  writeFile: writeAtomic,
  appendFile: (p, d) => fs.appendFile(p, d),
  async appendDurable(p, data, mode = 0o600) {
    const fh = await fs.open(p, "a", mode);
    let created = false;
    try {
      const start = (await fh.stat()).size;
      created = start === 0;
      const buf = Buffer.from(data);
      try {
        // A write may be short (a file size limit, a full disk): go on until all of it is written,
        // and on an error cut the file back to where it was, so no partial record stays behind.
        for (let off = 0; off < buf.length; )
          off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
        await fh.datasync();
      } catch (e) {
        await fh.truncate(start).catch(() => undefined);
        await fh.datasync().catch(() => undefined);
        throw e;
      }
    } finally {
      await fh.close();
    }
    if (created) await syncDir(dirname(p));
  },
  async createExclusive(p, data, mode = 0o600) {
    // Written in full to a temp file first, then linked into place (link fails if the name exists):
    // no one ever sees the file empty. An O_EXCL create followed by a write had that window, and a
    // lock read empty in it was taken for a dead owner's and taken over.
    // The temp file names its writer: one whose writer is gone (killed midway) can be swept.
    const tmp = join(dirname(p), `.${basename(p)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    const fh = await fs.open(tmp, "wx", mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.link(tmp, p);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    } finally {
      await fs.rm(tmp, { force: true });
    }
  },
  async exists(p) {
    try {
      await fs.lstat(p);
      return true;
    } catch {
      return false;
    }
  },
  async stat(p) {
    try {
      return fileStat(await fs.stat(p, { bigint: true }));
    } catch {
      return undefined;
    }
  },
  async mkdir(p, mode) {
    await fs.mkdir(p, { recursive: true, mode });
  },
  readdir: (p) => fs.readdir(p),
  realpath: (p) => fs.realpath(p),
  readlink: (p) => fs.readlink(p),
  rm: (p) => fs.rm(p, { recursive: true, force: true }),
  async rmdir(p) {
    await fs.rmdir(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  },
  rename: (a, b) => fs.rename(a, b),
  chmod: (p, m) => fs.chmod(p, m),
  chown: (p, u, g) => fs.lchown(p, u, g),
  async freeBytes(p) {
    const s = await fs.statfs(p);
    return Number(s.bavail) * Number(s.bsize);
  },
  async openWrite(p, append): Promise<WritableFile> {
    const fh = await fs.open(p, append ? "a" : "w", 0o600);
    // Chunks are gathered and written with one writev per few MiB (a download's chunks are 64 KiB:
    // one write each cost a fifth of the transfer), and written data is flushed to disk in the
    // background as the file grows, so close()'s fsync does not wait for all of it at the end.
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let unsynced = 0;
    let syncing: Promise<void> = Promise.resolve();
    let syncError: unknown;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const batch = pending;
      unsynced += pendingBytes;
      pending = [];
      pendingBytes = 0;
      await fh.writev(batch);
      if (unsynced >= SYNC_EVERY) {
        unsynced = 0;
        syncing = syncing
          .then(() => fh.datasync())
          .catch((e: unknown) => {
            syncError ??= e;
          });
      }
    };
    return {
      async write(chunk) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH) await flush();
      },
      async close() {
        try {
          await flush();
          await syncing;
          if (syncError) throw syncError;
          await fh.sync();
        } finally {
          await fh.close();
        }
      },
    };
  },
  openRead,
};

// O_NOFOLLOW: a link at path fails the open (ELOOP) instead of being followed; O_NONBLOCK: a FIFO
// does not hang the open (a regular file ignores it). What was opened is checked through its fd.
const READ_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

async function openRead(p: string): Promise<ReadableFile | undefined> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(p, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new Error(`${p} is a symbolic link; aplspawn does not follow it`);
    throw e;
  }
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw e;
  });
  if (!st.isFile()) {
    await fh.close();
    throw new Error(`${p} is not a regular file; aplspawn reads only regular files there`);
  }
  return {
    stat: async () => fileStat(await fh.stat({ bigint: true })),
    async read(position, length) {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    },
    close: () => fh.close(),
  };
}

type Undici = typeof import("undici");

let agent: Dispatcher | undefined;
const MAX_REDIRECTS = 5;

// One string per header, names in lower case.
function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

// A Retry-After header's wait in ms (seconds or an HTTP date); undefined when absent, past or unreadable.
function retryAfterMs(v: string | string[] | undefined): number | undefined {
  const s = (Array.isArray(v) ? v[0] : v)?.trim();
  if (!s) return undefined;
  const ms = /^\d+$/.test(s) ? Number(s) * 1000 : Date.parse(s) - Date.now();
  return ms > 0 ? ms : undefined;
}

// undici's RetryAgent over the shared Agent, configured from `r`: it re-sends the request, counts
// the tries, and turns a response of one of `statusCodes` into a retry. Its `retry` callback, which
// decides and waits, is ours rather than undici's default (not exported by undici 7: a private
// symbol): the default waits on a bare setTimeout that the request's signal cannot cut short (an
// interrupt would wait out up to maxTimeout), and it does not say how long it waits. Ours applies
// the same options the same way (the listed statuses and codes, maxRetries, Retry-After or
// minTimeout doubling, capped at maxTimeout), cancellably, and tells onRetry. Once the response has
// been handed over (`delivered`) it declines: RetryHandler would otherwise resume a cut body with a
// Range request of its own, under a count that never resets on progress; the caller resumes instead.
function retrying(
  u: Undici,
  base: Dispatcher,
  r: HttpRetry,
  signal: AbortSignal | undefined,
  delivered: () => boolean,
): Dispatcher {
  const o = {
    maxRetries: r.retries,
    minTimeout: r.minDelayMs,
    maxTimeout: r.maxDelayMs,
    timeoutFactor: 2,
    statusCodes: [...r.statuses],
    errorCodes: [...r.errorCodes],
  };
  return new u.RetryAgent(base, {
    ...o,
    retry(error, { state }, done) {
      const status = error instanceof u.errors.RequestRetryError ? error.statusCode : undefined;
      const code = (error as { code?: unknown }).code;
      const worth =
        status !== undefined
          ? o.statusCodes.includes(status)
          : typeof code === "string" && o.errorCodes.includes(code);
      if (delivered() || !worth || state.counter > o.maxRetries || signal?.aborted) return done(error);
      const after =
        error instanceof u.errors.RequestRetryError
          ? retryAfterMs(error.headers?.["retry-after"])
          : undefined;
      const delayMs = Math.min(o.maxTimeout, after ?? o.minTimeout * o.timeoutFactor ** (state.counter - 1));
      r.onRetry?.({ error, status, retry: state.counter, delayMs });
      delay(delayMs, undefined, { signal }).then(
        () => done(null),
        () => done(signal?.reason instanceof Error ? signal.reason : error),
      );
    },
  });
}

// Redirects are followed here, not by undici's interceptor: each hop is checked, and one from
// https to http (a downgrade anyone on the way could then rewrite) is refused. Each hop is retried
// (opts.retry) on its own.
const realHttp: HostHttp = {
  async request(url, opts) {
    undiciModule ??= import("undici");
    const u = await undiciModule;
    agent ??= new u.Agent();
    const base = agent;
    let at = new URL(url);
    for (let hop = 0; ; hop++) {
      // Set (synchronously, in undici's callback) when the response is handed over.
      let delivered = false;
      const dispatcher = opts.retry ? retrying(u, base, opts.retry, opts.signal, () => delivered) : base;
      const res = await new Promise<Dispatcher.ResponseData>((resolve, reject) => {
        dispatcher.request(
          {
            origin: at.origin,
            path: `${at.pathname}${at.search}`,
            method: opts.method ?? "GET",
            headers: opts.headers,
            signal: opts.signal,
            headersTimeout: opts.timeoutMs ?? 30_000,
            bodyTimeout: opts.timeoutMs ?? 30_000,
          },
          (err, data) => {
            if (err) return reject(err);
            delivered = true;
            resolve(data);
          },
        );
      }).catch((e: unknown) => {
        // A "later" status still there after the last try: that response (its body is gone). Other
        // RequestRetryErrors (RetryHandler's own checks of a 206, say) stay errors.
        if (!(e instanceof u.errors.RequestRetryError && opts.retry?.statuses.includes(e.statusCode)))
          throw e;
        return { statusCode: e.statusCode, headers: e.headers ?? {}, body: undefined };
      });
      const headers = flatHeaders(res.headers);
      const location = headers.location;
      if (![301, 302, 303, 307, 308].includes(res.statusCode) || !location)
        return { status: res.statusCode, headers, body: res.body ?? (async function* () {})() };
      await res.body?.dump().catch(() => undefined);
      const next = new URL(location, at);
      if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`);
      if (at.protocol === "https:" && next.protocol !== "https:")
        throw new Error(`refused a redirect from ${at.origin} to ${next.protocol}//${next.host}: not https`);
      if (!["http:", "https:"].includes(next.protocol))
        throw new Error(`refused a redirect to ${next.protocol}`);
      at = next;
    }
  },
};

/** The host aplspawn runs on. */
export function realHost(): Host {
  return {
    exec,
    spawnDetached,
    lockFile,
    kill(pid, signal) {
      // A PID of 0 or below signals a whole process group or every process: never what is meant (a
      // group-wide SIGTERM from a test run's process was seen killing the whole `npm test`).
      if (!Number.isInteger(pid) || pid <= 0) return false;
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
    fs: realFs,
    http: realHttp,
    sleep: (ms, signal) => delay(ms, undefined, { signal }),
    now: () => Date.now(),
    canConnect,
    root: rootFs,
    uid: () => process.geteuid?.() ?? -1,
    async which(cmd) {
      for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
        const p = join(dir, cmd);
        try {
          await fs.access(p, fsConstants.X_OK);
          return p;
        } catch {}
      }
      return undefined;
    },
  };
}
