// A container's console log (containers/<name>/nspawn.log: what its systemd-nspawn and the
// container's console print), read for `aplspawn logs`: its last lines, then, when following, what
// is appended, on through a file put in its place (a container set up again). The text is the
// container's to forge: only printable() text leaves here, and the file is opened without following
// a link and read only when it is a regular file (HostFs.openRead).
import { StringDecoder } from "node:string_decoder";
import { UsageError } from "../errors.js";
import type { Host, ReadableFile } from "../host/host.js";
import { printable } from "../runner/report.js";

/** How many of the last lines to show: a count (0: none) or every line. */
export type LineCount = number | "all";

/** `-n`'s value: a count of lines, or "all". */
export function parseLineCount(v: string): LineCount {
  if (v === "all") return "all";
  if (!/^\d+$/.test(v)) throw new UsageError(`-n takes a number of lines or "all", not "${v}"`);
  return Number(v);
}

const NL = 0x0a;

/**
 * Where, in buf (the end of a file), its last n lines start (a last line without its newline
 * counts); undefined when buf holds fewer and the file has more before it (`atStart` false).
 */
export function tailStart(buf: Uint8Array, n: number, atStart: boolean): number | undefined {
  if (n === 0) return buf.length;
  // The newline ending the last line is not a line's start.
  let i = buf.length > 0 && buf[buf.length - 1] === NL ? buf.length - 2 : buf.length - 1;
  for (let found = 0; i >= 0; i--) if (buf[i] === NL && ++found === n) return i + 1;
  return atStart ? 0 : undefined;
}

/** Cuts text arriving in pieces into printable lines; a piece may end mid-line or mid-character. */
export class LineSplitter {
  private readonly decoder = new StringDecoder("utf8");
  private rest = "";

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Uint8Array): void {
    const lines = (this.rest + this.decoder.write(Buffer.from(chunk))).split("\n");
    this.rest = lines.pop() ?? "";
    for (const l of lines) this.onLine(printable(l));
  }

  /** The last line, though no newline ended it (the end of what is shown, or of a replaced file). */
  flush(): void {
    const last = this.rest + this.decoder.end();
    this.rest = "";
    if (last) this.onLine(printable(last));
  }
}

const CHUNK = 64 * 1024;
/** At most this much is read back looking for the last lines' start (a log without newlines). */
const MAX_BACK = 16 * 1024 * 1024;

// The offset the last `lines` lines of the first `size` bytes start at.
async function tailFrom(f: ReadableFile, size: number, lines: LineCount): Promise<number> {
  if (lines === "all") return 0;
  let start = size;
  let buf = Buffer.alloc(0);
  while (start > 0 && buf.length < MAX_BACK) {
    const from = Math.max(0, start - CHUNK);
    buf = Buffer.concat([await f.read(from, start - from), buf]);
    start = from;
    const at = tailStart(buf, lines, start === 0);
    if (at !== undefined) return start + at;
  }
  return start;
}

// Pass bytes [from, to) of f on to out; where the copy ended.
async function copy(f: ReadableFile, from: number, to: number, out: LineSplitter): Promise<number> {
  let pos = from;
  while (pos < to) {
    const b = await f.read(pos, Math.min(CHUNK, to - pos));
    if (b.length === 0) break;
    out.push(b);
    pos += b.length;
  }
  return pos;
}

const sameFile = async (a: ReadableFile, b: ReadableFile) => {
  const [x, y] = await Promise.all([a.stat(), b.stat()]);
  return x.devId === y.devId && x.inoId === y.inoId;
};

/** How to show a log. */
export interface ShowLogOptions {
  lines: LineCount;
  /** Go on printing what is appended until `signal` is aborted. */
  follow: boolean;
  signal: AbortSignal;
  /** Each printable line, without its newline. */
  onLine(line: string): void;
  /** How often a followed log is looked at (default 250 ms). */
  everyMs?: number;
}

/**
 * Show the last lines of the log at path and, following, what is appended to it; a file put at
 * path meanwhile (the container set up again) is then shown from its start, and one cut short, from
 * its start again. false when there is no log at path.
 */
export async function showLog(host: Host, path: string, o: ShowLogOptions): Promise<boolean> {
  let f = await host.fs.openRead(path);
  if (!f) return false;
  const out = new LineSplitter(o.onLine);
  try {
    const end = (await f.stat()).size;
    let pos = await copy(f, await tailFrom(f, end, o.lines), end, out);
    while (o.follow && !o.signal.aborted) {
      await host.sleep(o.everyMs ?? 250, o.signal).catch(() => undefined);
      const size = (await f.stat()).size;
      pos = await copy(f, size < pos ? 0 : pos, size, out);
      const now = await host.fs.openRead(path);
      if (now && !(await sameFile(f, now))) {
        out.flush();
        await f.close();
        f = now;
        pos = 0;
      } else await now?.close();
    }
    out.flush();
    return true;
  } finally {
    await f.close();
  }
}
