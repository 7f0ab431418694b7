// Progress for long transfers: a cli-progress-formatted bar string on a terminal (listr2 draws it as
// the task's output line; cli-progress's own renderer would fight listr2 for the cursor) and a plain
// line every few seconds or every 10 % elsewhere.
import { createRequire } from "node:module";
import type * as CliProgress from "cli-progress";

// cli-progress is loaded on first use: the CLI starts without it (most commands draw no bar).
let formatter: typeof CliProgress.Format.Formatter | undefined;
function cliFormatter(): typeof CliProgress.Format.Formatter {
  formatter ??= (createRequire(import.meta.url)("cli-progress") as typeof CliProgress).Format.Formatter;
  return formatter;
}

/** Human-readable bytes, binary units ("148.0 MiB"). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Seconds as "1h02m", "3m05s", "12s". */
function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  return `${t}s`;
}

/** A snapshot of a transfer. */
export interface TransferState {
  /** Bytes done so far (including bytes of a resumed .part). */
  value: number;
  /** Total bytes, when the server said. */
  total: number | undefined;
  /** Bytes per second over this session. */
  rate: number;
  /** Seconds left, when the total is known and the rate positive. */
  eta: number | undefined;
}

const BAR_SIZE = 30;
const barOptions = {
  format: "[{bar}] {percentage}% | {done} / {size} | {speed} | ETA {eta_h}",
  barsize: BAR_SIZE,
  barCompleteString: "█".repeat(BAR_SIZE),
  barIncompleteString: "░".repeat(BAR_SIZE),
  barGlue: "",
  align: "left" as const,
  autopadding: true,
  autopaddingChar: " ",
};

/** The bar line for a terminal, formatted by cli-progress's formatter. */
export function formatBar(s: TransferState, now = Date.now()): string {
  if (s.total === undefined || s.total <= 0)
    return `${formatBytes(s.value)} | ${formatBytes(s.rate)}/s (size unknown)`;
  return cliFormatter()(
    barOptions as unknown as CliProgress.Options,
    {
      progress: Math.min(1, s.value / s.total),
      eta: s.eta ?? 0,
      startTime: now,
      stopTime: now,
      total: s.total,
      value: s.value,
      maxWidth: 200,
    },
    {
      done: formatBytes(s.value),
      size: formatBytes(s.total),
      speed: `${formatBytes(s.rate)}/s`,
      eta_h: s.eta === undefined ? "?" : formatSeconds(s.eta),
    },
  );
}

/** The plain line for logs: "45 % of 148.0 MiB (66.6 MiB), 12.3 MiB/s, 7s left". */
export function formatPlain(s: TransferState): string {
  const rate = `${formatBytes(s.rate)}/s`;
  if (s.total === undefined || s.total <= 0) return `${formatBytes(s.value)} so far, ${rate}`;
  const pct = Math.floor((100 * s.value) / s.total);
  return `${pct} % of ${formatBytes(s.total)} (${formatBytes(s.value)}), ${rate}, ${s.eta === undefined ? "?" : formatSeconds(s.eta)} left`;
}

/** How often each kind of line is emitted. */
export interface ProgressPolicy {
  /** A terminal bar is redrawn at most this often. */
  ttyIntervalMs: number;
  /** Off a terminal, a line at least this often while bytes arrive… */
  plainIntervalMs: number;
  /** …and whenever another step of this many percent is crossed. */
  plainPercentStep: number;
}

const DEFAULT_POLICY: ProgressPolicy = { ttyIntervalMs: 150, plainIntervalMs: 5000, plainPercentStep: 10 };

/** Tracks a transfer and decides when a line is worth emitting. */
export class TransferProgress {
  private sessionStart: number;
  private sessionBase: number;
  private value: number;
  private lastEmit = Number.NEGATIVE_INFINITY;
  private lastStep = -1;

  constructor(
    private readonly opts: {
      tty: boolean;
      emit(line: string): void;
      total?: number;
      /** Bytes already there (a resumed .part). */
      start?: number;
      now?: () => number;
      policy?: Partial<ProgressPolicy>;
    },
  ) {
    const now = this.now();
    this.sessionStart = now;
    this.sessionBase = opts.start ?? 0;
    this.value = this.sessionBase;
    if (opts.total) this.lastStep = this.step(this.value);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private get policy(): ProgressPolicy {
    return { ...DEFAULT_POLICY, ...this.opts.policy };
  }

  private step(v: number): number {
    const t = this.opts.total;
    return t ? Math.floor((100 * v) / t / this.policy.plainPercentStep) : -1;
  }

  /** Set the total once known (e.g. from a response's headers). */
  setTotal(total: number | undefined): void {
    this.opts.total = total;
    if (total) this.lastStep = this.step(this.value);
  }

  /** The transfer starts over from `value` bytes (a restart or a resume). */
  restart(value: number): void {
    this.sessionStart = this.now();
    this.sessionBase = value;
    this.value = value;
    this.lastStep = this.step(value);
  }

  /** The current numbers. */
  state(): TransferState {
    const secs = (this.now() - this.sessionStart) / 1000;
    const rate = secs > 0 ? (this.value - this.sessionBase) / secs : 0;
    const total = this.opts.total;
    const eta = total && rate > 0 ? Math.max(0, (total - this.value) / rate) : undefined;
    return { value: this.value, total, rate, eta };
  }

  /** Record progress; emits a line when the policy says so. */
  update(value: number): void {
    this.value = value;
    const now = this.now();
    const p = this.policy;
    if (this.opts.tty) {
      if (now - this.lastEmit >= p.ttyIntervalMs) this.emitNow(now);
      return;
    }
    const step = this.step(value);
    if (step > this.lastStep || now - this.lastEmit >= p.plainIntervalMs) {
      this.lastStep = Math.max(step, this.lastStep);
      this.emitNow(now);
    }
  }

  private emitNow(now: number): void {
    this.lastEmit = now;
    const s = this.state();
    this.opts.emit(this.opts.tty ? formatBar(s, now) : formatPlain(s));
  }
}
