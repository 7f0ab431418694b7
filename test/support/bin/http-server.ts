// The tests' static HTTP server, run inside a test namespace (its loopback is the CLI's): serves a
// directory with or without Range support, and can cut a download off partway. Prints its port, then
// one JSON line per request. Only acts when started with --aplspawn-serve (the test runner loads it too).
// Paths under /chunked/ are sent without a Content-Length. /fault/KIND/TIMES/FILE serves FILE, but
// the first TIMES GETs of that path fail: KIND a status (a 429 says Retry-After: 1), "reset" (the
// connection is dropped before any answer) or "stall" (the headers, then the connection is closed
// with no byte of the body). Given a certificate, it also serves https (its port printed as tlsPort),
// where /to-http/FILE redirects to FILE over plain http and /to-https/FILE to FILE over https.
// /variants/N/KIB/FILE serves different bodies to different clients: the k-th GET of that path gets
// FILE.<k mod N> (the test makes them of equal length), sent KIB KiB every 10 ms (0: at once); each
// request's line names the variant served.
import { createReadStream, readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { join, normalize } from "node:path";

function serve(
  root: string,
  range: boolean,
  cutAfter: number,
  cutTimes: number,
  tls?: { cert: string; key: string },
): void {
  let cuts = cutTimes;
  const faults = new Map<string, number>();
  const variantGets = new Map<string, number>();
  const ports = { http: 0, https: 0 };
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    const variants = /^\/variants\/(\d+)\/(\d+)(\/.*)$/.exec(url.pathname);
    let variant: number | undefined;
    if (variants) {
      const k = variantGets.get(url.pathname) ?? 0;
      if (req.method === "GET") variantGets.set(url.pathname, k + 1);
      variant = k % Number(variants[1]);
    }
    process.stdout.write(
      `${JSON.stringify({ method: req.method, url: url.pathname, range: req.headers.range, variant })}\n`,
    );
    const hop = /^\/to-(https?)\/(.*)$/.exec(url.pathname);
    if (hop) {
      const to = hop[1] === "http" ? `http://127.0.0.1:${ports.http}` : `https://127.0.0.1:${ports.https}`;
      res.writeHead(302, { location: `${to}/${hop[2]}` }).end();
      return;
    }
    const fault = /^\/fault\/(\w+)\/(\d+)(\/.*)$/.exec(url.pathname);
    const pathname = variants ? `${variants[3]}.${variant}` : (fault?.[3] ?? url.pathname);
    let stall = false;
    if (fault && req.method === "GET") {
      const seen = faults.get(url.pathname) ?? 0;
      faults.set(url.pathname, seen + 1);
      if (seen < Number(fault[2])) {
        if (fault[1] === "reset") {
          req.socket.destroy();
          return;
        }
        stall = fault[1] === "stall";
        if (!stall) {
          const status = Number(fault[1]);
          res.writeHead(status, status === 429 ? { "retry-after": "1" } : {}).end("later\n");
          return;
        }
      }
    }
    const chunked = pathname.startsWith("/chunked/");
    const served = chunked ? pathname.slice("/chunked".length) : pathname;
    const path = join(root, normalize(decodeURIComponent(served)).replace(/^(\.\.[/\\])+/, ""));
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const size = st.size;
    const common: Record<string, string> = { "content-type": "application/octet-stream" };
    if (range) common["accept-ranges"] = "bytes";
    let start = 0;
    let status = 200;
    const m = range ? /^bytes=(\d+)-$/.exec(req.headers.range ?? "") : null;
    if (m) {
      start = Number(m[1]);
      if (start >= size) {
        res.writeHead(416, { ...common, "content-range": `bytes */${size}` }).end();
        return;
      }
      status = 206;
      common["content-range"] = `bytes ${start}-${size - 1}/${size}`;
    }
    res.writeHead(status, chunked ? common : { ...common, "content-length": String(size - start) });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    if (stall) {
      res.flushHeaders();
      res.socket?.end();
      return;
    }
    if (cuts > 0 && size - start > cutAfter) {
      // Send part of the body, then drop the connection (a network failure mid-download).
      cuts--;
      const fh = await open(path, "r");
      const buf = Buffer.alloc(cutAfter);
      await fh.read(buf, 0, cutAfter, start);
      await fh.close();
      // end(), not destroy(): a FIN after the bytes, so the client gets all of them, then a short body.
      res.write(buf, () => res.socket?.end());
      return;
    }
    const kib = Number(variants?.[2] ?? 0);
    if (kib > 0) {
      // Slowly, so that clients that do not wait for each other overlap.
      const fh = await open(path, "r");
      try {
        for (let at = start; at < size; at += kib * 1024) {
          const buf = Buffer.alloc(Math.min(kib * 1024, size - at));
          await fh.read(buf, 0, buf.length, at);
          if (!res.write(buf)) await new Promise((r) => res.once("drain", r));
          await new Promise((r) => setTimeout(r, 10));
          if (res.destroyed) return;
        }
      } finally {
        await fh.close();
      }
      res.end();
      return;
    }
    createReadStream(path, { start }).pipe(res);
  };
  const server = createServer(handler);
  const secure =
    tls && createTlsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, handler);
  const portOf = (s: { address(): unknown }) => {
    const a = s.address();
    return typeof a === "object" && a ? (a as { port: number }).port : 0;
  };
  server.listen(0, "127.0.0.1", () => {
    ports.http = portOf(server);
    if (!secure) {
      process.stdout.write(`${JSON.stringify({ port: ports.http })}\n`);
      return;
    }
    secure.listen(0, "127.0.0.1", () => {
      ports.https = portOf(secure);
      process.stdout.write(`${JSON.stringify({ port: ports.http, tlsPort: ports.https })}\n`);
    });
  });
  process.on("SIGTERM", () => {
    server.closeAllConnections();
    secure?.closeAllConnections();
    secure?.close();
    server.close(() => process.exit(0));
  });
}

if (process.argv[2] === "--aplspawn-serve") {
  const [, , , root, mode, cutAfter, cutTimes, cert, key] = process.argv;
  const tls = cert && key ? { cert, key } : undefined;
  serve(root ?? ".", mode !== "norange", Number(cutAfter ?? 0), Number(cutTimes ?? 0), tls);
}
