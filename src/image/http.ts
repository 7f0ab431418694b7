// Pure pieces of the resumable download: what a response means for the .part file, and which
// failures are worth trying again.
import { STATUS_CODES } from "node:http";
import type { HttpRetry } from "../host/host.js";

/** "404 Not Found" for a status code. */
export function statusLine(status: number): string {
  const t = STATUS_CODES[status];
  return t ? `${status} ${t}` : String(status);
}

/** A parsed `Content-Range: bytes START-END/TOTAL` header. */
export interface ContentRange {
  start: number;
  end: number;
  /** undefined for "*". */
  total: number | undefined;
}

/** Parse a Content-Range header; undefined when absent or malformed. */
export function parseContentRange(h: string | undefined): ContentRange | undefined {
  const m = h ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h.trim()) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

/** What to do with an existing .part of `have` bytes, given the response to a Range request. */
export type ResumeDecision =
  | { action: "append"; total: number | undefined }
  | { action: "restart"; total: number | undefined; reason: string }
  | { action: "complete"; total: number }
  | { action: "fail" };

/** Decide from the status and headers how the response relates to the bytes already downloaded. */
export function resumeDecision(
  status: number,
  headers: Record<string, string | undefined>,
  have: number,
): ResumeDecision {
  const length = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  if (status === 200) {
    return have > 0
      ? { action: "restart", total: length, reason: "the server ignores Range requests" }
      : { action: "append", total: length };
  }
  if (status === 206) {
    const r = parseContentRange(headers["content-range"]);
    if (!r)
      return {
        action: "restart",
        total: undefined,
        reason: "the server sent a Content-Range it cannot parse",
      };
    if (r.start !== have)
      return {
        action: "restart",
        total: r.total,
        reason: `the server resumed at byte ${r.start}, not ${have}`,
      };
    return { action: "append", total: r.total };
  }
  if (status === 416) {
    // Nothing past our end: complete if our size is the file's size, else the .part is stale.
    const r = /\/(\d+)$/.exec(headers["content-range"] ?? "");
    const total = r ? Number(r[1]) : undefined;
    if (total !== undefined && total === have) return { action: "complete", total };
    return { action: "restart", total, reason: "the partial file is larger than the image on the server" };
  }
  return { action: "fail" };
}

/** A transfer failure: `retryable` when trying again may help. */
export class DownloadError extends Error {
  override name = "DownloadError";
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Error codes of network failures (undici's and the OS's) that a retry may fix. */
const RETRYABLE_CODES = [
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
] as const;

/**
 * How the image request is retried while its response has not arrived (the host's HTTP layer does
 * it: undici's RetryAgent): the statuses that mean "later", the failures above, 5 retries, waits of
 * 1 s, 2 s, 4 s … (or what Retry-After says) up to 30 s.
 */
export const DOWNLOAD_RETRY: HttpRetry = {
  retries: 5,
  minDelayMs: 1000,
  maxDelayMs: 30_000,
  statuses: [408, 429, 502, 503, 504],
  errorCodes: RETRYABLE_CODES,
};

/** Whether a thrown error (a cut in a response's body) is a network failure worth resuming after. */
export function isRetryableError(e: unknown): boolean {
  if (e instanceof DownloadError) return e.retryable;
  for (let cur: unknown = e, depth = 0; cur && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && DOWNLOAD_RETRY.errorCodes.includes(code)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  const msg = e instanceof Error ? e.message : "";
  return /terminated|socket|other side closed|ECONNRESET/i.test(msg);
}

/** The space a download needs: what is still to come plus a margin for the filesystem's own needs. */
export function spaceNeeded(total: number, have: number, margin = SPACE_MARGIN): number {
  return Math.max(0, total - have) + margin;
}

/** Free space kept in reserve beyond the image itself. */
export const SPACE_MARGIN = 64 * 1024 * 1024;
