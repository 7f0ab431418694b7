// The one door to the outside world: every process, file and HTTP call a task makes goes through
// a Host, so tests can hand tasks a recording fake and the real host stays a thin layer.

/** Options for one command. Commands never go through a shell: argv arrays only. */
export interface ExecOptions {
  /** Milliseconds before the command is killed; every command has one (default 60 s). */
  timeoutMs?: number;
  /** Aborting this kills the command (SIGTERM, then SIGKILL). */
  signal?: AbortSignal;
  /** Data written to stdin. */
  input?: string;
  /** Return a non-zero exit as a result instead of throwing. */
  allowFail?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** True for commands that only read; a dry run executes only these. */
  readOnly?: boolean;
  /** Called with each line of stdout and stderr as it comes (long commands show progress). */
  onLine?: (line: string) => void;
}

/** What a finished command returned. */
export interface ExecResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Options for a process that must outlive aplspawn (systemd-nspawn). */
export interface DetachedOptions {
  /** stdout and stderr are appended to this file. */
  logFile: string;
  /**
   * Keep at most this many more bytes of the output in logFile: a relay of aplspawn's (not the
   * command) reads it through a FIFO, writes that many, then one line saying the rest is dropped,
   * and reads on to the end, so the command never blocks on a full pipe.
   */
  logMaxBytes?: number;
  cwd?: string;
  env?: Record<string, string>;
}

/** Small file API: what tasks need of node:fs, nothing more. */
export interface HostFs {
  readFile(path: string): Promise<string>;
  readBytes(path: string, position: number, length: number): Promise<Buffer>;
  /** Write atomically (temp file, fsync, rename); mode applies to the new file. */
  writeFile(path: string, data: string | Uint8Array, mode?: number): Promise<void>;
  appendFile(path: string, data: string): Promise<void>;
  /**
   * Append and fdatasync before resolving (a new file's directory entry is synced too); all or
   * nothing: on an error the file is cut back to its size before.
   */
  appendDurable(path: string, data: string, mode?: number): Promise<void>;
  /** Create a file that must not exist yet (O_EXCL); false when it already exists. */
  createExclusive(path: string, data: string, mode?: number): Promise<boolean>;
  exists(path: string): Promise<boolean>;
  /** What is at path (links followed); undefined when nothing is. */
  stat(path: string): Promise<FileStat | undefined>;
  /** A link's text (the link itself is not followed). */
  readlink(path: string): Promise<string>;
  /** The path with every link resolved (it must exist). */
  realpath(path: string): Promise<string>;
  mkdir(path: string, mode?: number): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** Remove a file or a tree; absent is fine. */
  rm(path: string): Promise<void>;
  /** Remove an empty directory (a cgroup: rm cannot); absent is fine, EBUSY and others throw. */
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  /** Bytes free for an unprivileged writer in the filesystem holding path. */
  freeBytes(path: string): Promise<number>;
  /** Open a file for streaming writes (appending when append is true). */
  openWrite(path: string, append: boolean): Promise<WritableFile>;
  /**
   * Open a regular file to read, never following a link at path (O_NOFOLLOW) and never blocking on a
   * FIFO: a link or anything but a regular file is an error naming it; undefined when nothing is there.
   */
  openRead(path: string): Promise<ReadableFile | undefined>;
}

/** What a name in a confined root is (never followed). */
export type EntryKind = "file" | "dir" | "link" | "other";

/** The owner a confined write gives what it creates (root by default). */
export interface Owner {
  uid?: number;
  gid?: number;
}

/**
 * A tree aplspawn does not trust: a booted container's root (its root user controls the upper
 * layer), an image's tree. Paths are the tree's own ("/etc/ssh/…"), resolved inside it from a
 * directory fd, one component at a time: links are never followed (a link where a directory or a
 * file to read is expected is a RootFsError), mount points are never crossed, only regular files
 * are read, and a file is written by a rename in its directory (a link there is replaced).
 */
export interface RootFs {
  /** The tree's host path, for messages. */
  readonly root: string;
  /** What is at path, not followed; undefined when absent. */
  kind(path: string): Promise<EntryKind | undefined>;
  /** A regular file's text (at most maxBytes, default 1 MiB); undefined when absent. */
  readFile(path: string, maxBytes?: number): Promise<string | undefined>;
  /** Replace path with a regular file of this content, mode and owner; missing parents are made (0755, root). */
  writeFile(path: string, data: string, o: Owner & { mode: number }): Promise<void>;
  /** Make the missing directories of path, each with this mode and owner; returns those made. */
  mkdir(path: string, o: Owner & { mode: number }): Promise<string[]>;
  /** Change the owner of an existing file or directory (never a link, FIFO or device). */
  chown(path: string, uid: number, gid: number): Promise<void>;
  /** A link's text; undefined when path is absent or not a link. */
  readlink(path: string): Promise<string | undefined>;
  /** Make path a link to target (text only, never resolved by aplspawn), replacing a file or link. */
  symlink(target: string, path: string): Promise<void>;
  /** The names in a directory ([] when it is absent). */
  list(path: string): Promise<string[]>;
  /** Remove a file, link or special file (not followed); absent is fine; a directory is refused. */
  remove(path: string): Promise<void>;
}

/** A RootFs's reads, delegated one by one (it is a class: its methods are never spread). */
export const rootReads = (r: RootFs): Pick<RootFs, "root" | "kind" | "readFile" | "readlink" | "list"> => ({
  root: r.root,
  kind: (p) => r.kind(p),
  readFile: (p, max) => r.readFile(p, max),
  readlink: (p) => r.readlink(p),
  list: (p) => r.list(p),
});

/** A confined-root operation refused what it found: names the tree and the path. */
export class RootFsError extends Error {
  override name = "RootFsError";
  constructor(
    readonly label: string,
    readonly path: string,
    what: string,
  ) {
    super(
      `${label}: ${path} ${what}; aplspawn never follows links, reads special files or leaves the root inside a ${label.split(" ")[0]}`,
    );
  }
}

/** What stat(2) says of a file. */
export interface FileStat {
  size: number;
  isDirectory: boolean;
  isFile: boolean;
  mode: number;
  uid: number;
  gid: number;
  dev: number;
  ino: number;
  /** The inode number, exact (as text: inodes can pass 2^53). */
  inoId: string;
  /** The device holding the file, "major:minor". */
  devId: string;
  /** The device a block or character special file is, "major:minor" ("0:0" for others). */
  rdevId: string;
  /** Modification and status change times, "seconds.nanoseconds" (as `stat -c %.9Y`). */
  mtime: string;
  ctime: string;
}

/** A file being written piece by piece (downloads). */
export interface WritableFile {
  write(chunk: Uint8Array): Promise<void>;
  /** fsync and close. */
  close(): Promise<void>;
}

/** A regular file open for reading (see HostFs.openRead): checked and read through its fd. */
export interface ReadableFile {
  /** What the fd holds now (its size grows as the file is written). */
  stat(): Promise<FileStat>;
  /** Up to length bytes from position (fewer at the end of the file). */
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** An HTTP response with its body as a stream of chunks. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Uint8Array>;
}

/**
 * How a request is tried again when it fails before its response arrives (the real host: undici's
 * RetryAgent). A failure once the response is in (a cut in its body) is not retried: the body
 * fails, and the caller resumes as only it can (from what it kept).
 */
export interface HttpRetry {
  /** Tries after the first. */
  retries: number;
  /** The wait before the first retry; it doubles with each, up to maxDelayMs (so does a Retry-After). */
  minDelayMs: number;
  maxDelayMs: number;
  /** Statuses that mean "later" (503, 429…): retried; after the last try, that response is returned. */
  statuses: readonly number[];
  /** Error codes (undici's and the OS's) of failures worth another try. */
  errorCodes: readonly string[];
  /** Told before each wait: why (an error, or a status), which retry, and how long the wait is. */
  onRetry?: (r: { error: Error; status: number | undefined; retry: number; delayMs: number }) => void;
}

/** Small HTTP API over undici. */
export interface HostHttp {
  request(
    url: string,
    opts: {
      method?: "GET" | "HEAD";
      headers?: Record<string, string>;
      signal?: AbortSignal;
      timeoutMs?: number;
      /** Retry failures before the response arrives; without it, a request is tried once. */
      retry?: HttpRetry;
    },
  ): Promise<HttpResponse>;
}

/**
 * What everything that touches the host gets: the host and the run's cancel signal (and, in a run,
 * the run's scope: RunContext, run-scope.ts).
 */
export interface HostContext {
  host: Host;
  /** Aborted when the run is cancelled (failure elsewhere, Ctrl-C); pass it to every command. */
  signal: AbortSignal;
}

/** A lock the kernel holds for us (flock(2)) until release(), or until we die. */
export interface HeldLock {
  release(): Promise<void>;
}

/** How to take a lock file. */
export interface LockFileOptions {
  /** How long to wait for a holder to let go (0: not at all). */
  waitMs: number;
  /** Remove the file when releasing (while still holding it: a waiter then retries on the new file). */
  removeOnRelease?: boolean;
  /**
   * With removeOnRelease: also remove the file's directory when that leaves it empty (a directory
   * of locks alone, HOST_LOCK_DIR). A taker whose directory went meanwhile makes it again.
   */
  removeEmptyDir?: boolean;
  signal?: AbortSignal;
}

/** Everything with a side effect that a task may do. */
export interface Host {
  exec(cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Start a process in its own session, detached from ours; returns its PID. */
  spawnDetached(cmd: string, args: readonly string[], opts: DetachedOptions): Promise<number>;
  /**
   * Take an exclusive lock on the file at path (made if missing), held by the kernel on a
   * descriptor of this process: it goes with us however we end, and with nothing else. Its
   * directory (made if missing) must be ours alone. undefined when someone else holds it (after waitMs).
   */
  lockFile(path: string, o: LockFileOptions): Promise<HeldLock | undefined>;
  /** Send a signal; false when the process does not exist. */
  kill(pid: number, signal: NodeJS.Signals | 0): boolean;
  fs: HostFs;
  http: HostHttp;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** The clock (ms since the epoch) that waits and deadlines are measured on. */
  now(): number;
  /** Whether `cmd` is on PATH. */
  which(cmd: string): Promise<string | undefined>;
  /** The effective user id aplspawn runs as. */
  uid(): number;
  /**
   * The confined view of an untrusted tree at dir; label names it in errors ("container web1").
   * idShift: the host id of the tree's id 0 (a container in a user namespace), added to owners written.
   */
  root(dir: string, label: string, idShift?: number): RootFs;
  /** Whether a TCP connection to ip:port is accepted within timeoutMs (it is closed at once). */
  canConnect(ip: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
}

/** A command that failed: keeps the command line, exit code and the end of stderr. */
export class CommandError extends Error {
  override name = "CommandError";
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${reason}: ${command}${stderr ? `: ${lastLines(stderr, 1)}` : ""}`, options);
  }
  /** Multi-line text for verbose output. */
  get detail(): string {
    return `${this.reason}\n  command: ${this.command}\n  exit code: ${this.exitCode ?? "none"}\n${
      this.stderr ? `  stderr:\n${indent(lastLines(this.stderr, 20), "    ")}` : ""
    }`;
  }
}

/** The last n non-empty lines of a text. */
export function lastLines(text: string, n: number): string {
  return text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0)
    .slice(-n)
    .join("\n");
}

function indent(text: string, pad: string): string {
  return text
    .split("\n")
    .map((l) => pad + l)
    .join("\n");
}

/** Render argv as a copy-pasteable command line (for messages and dry runs, never executed). */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(shellQuote).join(" ");
}

/** One word as a POSIX shell (and Python's shlex) reads it back: quoted only when it must be. */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}
