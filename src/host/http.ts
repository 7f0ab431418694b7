// HTTP from the real host: undici, each redirect checked (never from https to http), retries that
// an interrupt cuts short and that say how long they wait.
import { setTimeout as delay } from "node:timers/promises";
import type { Dispatcher } from "undici";
import type { HostHttp, HttpRetry } from "./host.js";

// undici is loaded on first use: short commands (--version, names) start faster.
let undiciModule: Promise<typeof import("undici")> | undefined;

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
export const realHttp: HostHttp = {
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
