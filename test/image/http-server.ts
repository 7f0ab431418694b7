// The tests' static HTTP server, run inside a test namespace (its loopback is the CLI's): serves a
// directory with or without Range support, and can cut a download off partway. Prints its port, then
// one JSON line per request. Only acts when started with --aplspawn-serve (the test runner loads it too).
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { join, normalize } from "node:path";

function serve(root: string, range: boolean, cutAfter: number, cutTimes: number): void {
  let cuts = cutTimes;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    process.stdout.write(
      `${JSON.stringify({ method: req.method, url: url.pathname, range: req.headers.range })}\n`,
    );
    const path = join(root, normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ""));
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
    res.writeHead(status, { ...common, "content-length": String(size - start) });
    if (req.method === "HEAD") {
      res.end();
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
    createReadStream(path, { start }).pipe(res);
  });
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    process.stdout.write(`${JSON.stringify({ port: typeof a === "object" && a ? a.port : 0 })}\n`);
  });
  process.on("SIGTERM", () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

if (process.argv[2] === "--aplspawn-serve") {
  const [, , , root, mode, cutAfter, cutTimes] = process.argv;
  serve(root ?? ".", mode !== "norange", Number(cutAfter ?? 0), Number(cutTimes ?? 0));
}
