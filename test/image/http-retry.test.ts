// The real host's HTTP retries (undici's RetryAgent, configured by HttpRetry) against a server in
// this process on loopback: "later" statuses and failures before the response are retried with
// doubling waits, each told; the last status is returned after the limit; Retry-After is followed;
// a 404 and a cut in the body are not retried; an interrupt ends a wait at once. No root needed.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import type { HttpRetry } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";
import { DOWNLOAD_RETRY } from "../../src/image/http.js";

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

let handler: Handler = (_q, res) => res.end();
let hits = 0;
const server = createServer((req, res) => handler(req, res, hits++));
let base = "";

before(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const http = realHost().http;

/** Serve with `h` from now on; returns the notes of a fast policy's retries. */
function serve(h: Handler, o: Partial<HttpRetry> = {}) {
  handler = h;
  hits = 0;
  const notes: { status: number | undefined; retry: number; delayMs: number; code?: unknown }[] = [];
  const retry: HttpRetry = {
    ...DOWNLOAD_RETRY,
    minDelayMs: 20,
    maxDelayMs: 50,
    ...o,
    onRetry: ({ error, status, retry, delayMs }) =>
      notes.push({ status, retry, delayMs, ...(status ? {} : { code: (error as { code?: unknown }).code }) }),
  };
  return { notes, retry };
}

const text = async (body: AsyncIterable<Uint8Array>) => {
  let s = "";
  for await (const c of body) s += Buffer.from(c).toString();
  return s;
};

test("a 503 is retried with doubling waits, each told, until the image comes", async () => {
  const { notes, retry } = serve((_q, res, n) => (n < 2 ? res.writeHead(503).end("busy") : res.end("image")));
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 200);
  assert.equal(await text(res.body), "image");
  assert.equal(hits, 3);
  assert.deepEqual(notes, [
    { status: 503, retry: 1, delayMs: 20 },
    { status: 503, retry: 2, delayMs: 40 },
  ]);
});

test("after the last retry the status is returned; the waits stop doubling at maxDelayMs", async () => {
  const { notes, retry } = serve((_q, res) => res.writeHead(503).end("busy"));
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 503);
  assert.equal(await text(res.body), "");
  assert.equal(hits, DOWNLOAD_RETRY.retries + 1);
  assert.deepEqual(
    notes.map((n) => n.delayMs),
    [20, 40, 50, 50, 50],
  );
});

test("Retry-After says how long to wait", async () => {
  const { notes, retry } = serve(
    (_q, res, n) => (n === 0 ? res.writeHead(429, { "retry-after": "1" }).end() : res.end("image")),
    { maxDelayMs: 5000 },
  );
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 200);
  assert.deepEqual(notes, [{ status: 429, retry: 1, delayMs: 1000 }]);
});

test("a connection reset before the response is retried; a refused connection gives up after the limit", async () => {
  const { notes, retry } = serve((req, res, n) => (n === 0 ? req.socket.destroy() : res.end("image")));
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 200);
  assert.equal(await text(res.body), "image");
  assert.equal(hits, 2);
  assert.equal(notes.length, 1);
  assert.ok(DOWNLOAD_RETRY.errorCodes.includes(String(notes[0]?.code)), String(notes[0]?.code));

  // A port nobody listens on.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const refused = serve(() => undefined);
  await assert.rejects(http.request(`http://127.0.0.1:${port}/img`, { retry: refused.retry }), {
    code: "ECONNREFUSED",
  });
  assert.deepEqual(
    refused.notes.map((n) => n.code),
    Array(DOWNLOAD_RETRY.retries).fill("ECONNREFUSED"),
  );
});

test("a 404 is not retried", async () => {
  const { notes, retry } = serve((_q, res) => res.writeHead(404).end("no"));
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 404);
  await text(res.body);
  assert.equal(hits, 1);
  assert.deepEqual(notes, []);
});

test("a cut in the body is not retried by the HTTP layer: the body fails, the caller resumes", async () => {
  const { notes, retry } = serve((_q, res) => {
    res.writeHead(200, { "content-length": "1000" });
    res.write(Buffer.alloc(100), () => res.socket?.destroy());
  });
  const res = await http.request(`${base}/img`, { retry });
  assert.equal(res.status, 200);
  let got = 0;
  await assert.rejects(async () => {
    for await (const c of res.body) got += c.length;
  });
  assert.equal(got, 100);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(hits, 1, "the HTTP layer resumed the body itself");
  assert.deepEqual(notes, []);
});

test("an interrupt ends a wait at once", async () => {
  const ac = new AbortController();
  const { notes, retry } = serve((_q, res) => res.writeHead(503).end(), {
    minDelayMs: 20_000,
    maxDelayMs: 20_000,
  });
  const t0 = Date.now();
  const r = http.request(`${base}/img`, {
    signal: ac.signal,
    retry: {
      ...retry,
      onRetry(n) {
        retry.onRetry?.(n);
        setTimeout(() => ac.abort(), 20);
      },
    },
  });
  await assert.rejects(r);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  assert.equal(notes.length, 1);
  assert.equal(hits, 1);
});

test("without `retry`, a request is tried once", async () => {
  serve((_q, res) => res.writeHead(503).end());
  const res = await http.request(`${base}/img`, {});
  assert.equal(res.status, 503);
  await text(res.body);
  assert.equal(hits, 1);
});

test("a 206 that undici's RetryHandler finds inconsistent is an error, not an empty response", async () => {
  const { notes, retry } = serve((_q, res) =>
    res.writeHead(206, { "content-range": "bytes 10-99/100", "content-length": "50" }).end(Buffer.alloc(50)),
  );
  await assert.rejects(http.request(`${base}/img`, { headers: { range: "bytes=10-" }, retry }), {
    code: "UND_ERR_REQ_RETRY",
    statusCode: 206,
  });
  assert.equal(hits, 1);
  assert.deepEqual(notes, []);
});
