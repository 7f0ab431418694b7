// `run getimage` for real against a loopback HTTP server started inside the test's namespace (the
// CLI's loopback is the namespace's): full download, resume after a cut and after a crash, retries of
// a 503 and a reset (and giving up: a server that stays busy, a body that keeps breaking off), a
// server that ignores Range, checksum mismatch, 404, no space (a small tmpfs store), SHA256SUMS with
// and without the binary marker, the verified image kept as a cache.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import {
  type FileNamespace,
  namespacePerFile,
  sha256Of,
  startServer,
  type TestServer,
  writeConfig,
} from "../support/image.js";
import { runEvents } from "../support/json-events.js";
import { type NsSnapshot, skip, type TestNamespace } from "../support/ns.js";

const SIZE = 4 * 1024 * 1024;

let ns: TestNamespace;
let tmp: FileNamespace["tmp"];
let served: string;
let digest: string;
let data: Buffer;
let start: NsSnapshot;

namespacePerFile("aplspawn-download-", async (f) => {
  ({ ns, tmp, start } = f);
  served = join(tmp.path, "served");
  await mkdir(join(served, "plain"), { recursive: true });
  await mkdir(join(served, "wrong"), { recursive: true });
  data = randomBytes(SIZE);
  await writeFile(join(served, "deb.img"), data);
  digest = await sha256Of(join(served, "deb.img"));
  // As mkosi writes it (binary marker), as sha256sum writes it by default (text mode), and wrong.
  await writeFile(join(served, "SHA256SUMS"), `${"0".repeat(64)} *other.img\n${digest} *deb.img\n`);
  await writeFile(join(served, "plain/SHA256SUMS"), `${digest}  deb.img\n`);
  await writeFile(join(served, "wrong/SHA256SUMS"), `${"f".repeat(64)}  deb.img\n`);
});

async function lab(image: Record<string, unknown>) {
  const dir = await mkdtemp(join(tmp.path, "lab-"));
  // The test's server is plain http on loopback: checksums fetched from it (or none) are accepted
  // only with image.insecure (test/cli/bad-config.test.ts proves the refusal).
  const insecure = !image.sha256 && !String(image.url).startsWith("file:");
  const config = await writeConfig(dir, { ...(insecure ? { insecure: true } : {}), ...image });
  const store = join(dir, "work", "images");
  return { dir, config, store, path: join(store, "deb.img"), part: join(store, "deb.img.part") };
}

const getimage = (config: string, env: Record<string, string> = {}) =>
  ns.cli(["-c", config, "run", "getimage"], { env });

async function withServer<T>(
  o: Parameters<typeof startServer>[2],
  f: (s: TestServer) => Promise<T>,
): Promise<T> {
  const s = await startServer(ns, served, o);
  try {
    return await f(s);
  } finally {
    await s.stop();
  }
}

/** A test (it needs root) on a loopback server of `served` (`o`: startServer's options), stopped after. */
const serverTest = (
  title: string,
  o: Parameters<typeof startServer>[2],
  fn: (s: TestServer) => Promise<void>,
) => test(title, { skip }, () => withServer(o, fn));

const gets = (s: TestServer, path = "/deb.img") =>
  s.requests.filter((r) => r.method === "GET" && r.url === path);

async function assertImage(l: { path: string; part: string }) {
  assert.equal(await sha256Of(l.path), digest);
  assert.equal(existsSync(l.part), false, "the .part was left");
}

test("full download from a server without Range, verified by image.sha256; a second run does nothing", {
  skip,
}, async () => {
  await withServer({ range: false }, async (s) => {
    const l = await lab({ url: s.url("deb.img"), sha256: digest });
    // --json: every progress line (plain output shows a step's only once it has run two seconds,
    // which a 4 MiB download from loopback may not).
    const r = await ns.cli(["-c", l.config, "--json", "run", "getimage"]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    await assertImage(l);
    const events = runEvents(r);
    const said = (event: string) =>
      events.flatMap((e) => (e.event === event && "message" in e ? [e.message] : [])).join("\n");
    assert.ok(
      events.some((e) => e.event === "task" && e.id === "image.dirs" && e.state === "changed"),
      r.stdout,
    );
    assert.match(said("info"), /^URL: http:\/\/127\.0\.0\.1:\d+\/deb\.img$/m);
    assert.match(said("info"), /Downloading image deb\.img \(size 4\.0 MiB\) to .*images \(free space/);
    // Progress lines off a terminal: every 10 %.
    // Chunks fall where they fall: one line in each 10 % band, e.g. "51 % of 4.0 MiB (2.0 MiB)".
    assert.match(said("progress"), /^5\d % of 4\.0 MiB \(2\.\d MiB\), .*\/s, .* left$/m);
    assert.match(said("progress"), /^100 % of 4\.0 MiB/m);
    assert.match(said("info"), new RegExp(`SHA-256 verified: ${digest}`));
    assert.equal(gets(s).length, 1);
    assert.equal(gets(s)[0]?.range, undefined);

    const before = s.requests.length;
    const again = await getimage(l.config);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /0 changed, 3 unchanged/);
    assert.equal(s.requests.length, before, "a verified image was fetched again");
  });
  assert.deepEqual(await ns.snapshot(), start);
});

serverTest(
  "a download cut off halfway is retried with Range and resumed; SHA256SUMS with '*'",
  { range: true, cutAfter: SIZE / 2, cutTimes: 1 },
  async (s) => {
    const l = await lab({ url: s.url("deb.img"), checksums: s.url("SHA256SUMS") });
    const r = await getimage(l.config);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    await assertImage(l);
    // Resumed here, from the .part, not by undici: the HTTP layer does not retry a cut body.
    assert.match(r.stdout, /Connection lost at 2\.0 MiB \(.*\); resuming/);
    assert.match(r.stdout, /Resuming the download at /);
    assert.doesNotMatch(r.stdout, /retrying in/);
    // Resumed where the .part ended: after the bytes the server sent before it hung up.
    const ranges = gets(s).map((g) => g.range);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? "")?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= SIZE / 2, `resumed at ${ranges[1]}`);
    assert.match(r.stdout, /Expected SHA-256 \(http:.*\/SHA256SUMS\)/);
  },
);

serverTest(
  "a 503 and a connection reset before the response are retried with growing waits, each told",
  { range: true },
  async (s) => {
    for (const c of [
      {
        path: "fault/503/2/deb.img",
        notes: [
          /HTTP 503 Service Unavailable; retrying in 1 s at 0 B$/,
          /HTTP 503 Service Unavailable; retrying in 2 s at 0 B$/,
        ],
      },
      { path: "fault/reset/1/deb.img", notes: [/Network error \(.+\); retrying in 1 s at 0 B$/] },
    ]) {
      const l = await lab({ url: s.url(c.path), sha256: digest });
      const r = await getimage(l.config);
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      await assertImage(l);
      const told = r.stdout.split("\n").filter((line) => line.includes("retrying in"));
      assert.equal(told.length, c.notes.length, r.stdout);
      for (const [i, re] of c.notes.entries()) assert.match(told[i] ?? "", re);
      assert.equal(gets(s, `/${c.path}`).length, c.notes.length + 1);
    }
  },
);

serverTest(
  "given up on after the limit with a clear error, nothing left: a server that stays busy, a body that breaks off without progress",
  { range: true },
  async (s) => {
    for (const c of [
      // A 429 says Retry-After: 1, followed rather than waits of 1, 2, 4, 8 and 16 s.
      {
        path: "fault/429/99/deb.img",
        error: "failed 6 times in a row: HTTP 429 Too Many Requests",
        note: /HTTP 429 Too Many Requests; retrying in 1 s at 0 B/g,
      },
      {
        path: "fault/stall/99/deb.img",
        error: "broke off 6 times in a row without progress: ",
        note: /Connection lost at 0 B \(.*\); resuming/g,
      },
    ]) {
      const l = await lab({ url: s.url(c.path), sha256: digest });
      const r = await getimage(l.config);
      assert.equal(r.exitCode, 1, r.stdout);
      assert.ok(r.stderr.includes(`Download of ${s.url(c.path)} ${c.error}`), r.stderr);
      assert.equal(r.stdout.match(c.note)?.length, 5, r.stdout);
      assert.equal(gets(s, `/${c.path}`).length, 6);
      assert.equal(existsSync(l.part), false);
      assert.equal(existsSync(l.path), false);
    }
  },
);

/** Get `l`'s image with `part` left in its store as a crashed run's .part: it succeeds, the image right. */
async function getWithPart(l: Awaited<ReturnType<typeof lab>>, part: Buffer) {
  await mkdir(l.store, { recursive: true });
  await writeFile(l.part, part);
  const r = await getimage(l.config);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  await assertImage(l);
  return r;
}

serverTest("a .part left by a crashed run is resumed with a Range request", { range: true }, async (s) => {
  const l = await lab({ url: s.url("deb.img"), checksums: s.url("plain/SHA256SUMS") });
  const r = await getWithPart(l, data.subarray(0, 1048576));
  assert.match(r.stdout, /1\.0 MiB already there/);
  assert.deepEqual(
    gets(s).map((g) => g.range),
    ["bytes=1048576-"],
  );
});

serverTest(
  "a complete .part (crash before the rename) is only verified: the server answers 416",
  { range: true },
  async (s) => {
    const l = await lab({ url: s.url("deb.img"), sha256: digest });
    await getWithPart(l, data);
    assert.deepEqual(
      gets(s).map((g) => g.range),
      [`bytes=${SIZE}-`],
    );
  },
);

serverTest("a server that ignores Range restarts the download cleanly", { range: false }, async (s) => {
  const l = await lab({ url: s.url("deb.img"), checksums: s.url("plain/SHA256SUMS") });
  // Garbage in the .part: had it been kept and appended to, the digest would not match.
  const r = await getWithPart(l, Buffer.alloc(1048576, 0x55));
  assert.match(r.stdout, /the server ignores Range requests: downloading from the start/);
  assert.equal(gets(s)[0]?.range, "bytes=1048576-");
});

serverTest("a checksum mismatch deletes the download and names both digests", { range: true }, async (s) => {
  for (const image of [
    { url: s.url("deb.img"), sha256: "e".repeat(64) },
    { url: s.url("deb.img"), checksums: s.url("wrong/SHA256SUMS") },
  ]) {
    const l = await lab(image);
    const r = await getimage(l.config);
    assert.equal(r.exitCode, 1, r.stdout);
    const expected = image.sha256 ?? "f".repeat(64);
    assert.match(
      r.stderr,
      new RegExp(
        `Checksum mismatch for deb\\.img: expected ${expected} \\(.*\\), got ${digest}; the download was deleted`,
      ),
    );
    assert.equal(existsSync(l.path), false);
    assert.equal(existsSync(l.part), false);
  }
});

serverTest(
  "checksums that do not list the image stop before anything is downloaded",
  { range: true },
  async (s) => {
    const l = await lab({ url: s.url("other.img"), checksums: s.url("plain/SHA256SUMS") });
    const r = await getimage(l.config);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /plain\/SHA256SUMS has no line for other\.img/);
    assert.equal(gets(s, "/other.img").length, 0);
  },
);

serverTest(
  "a 404 stops at once with the URL and the status, without retrying",
  { range: true },
  async (s) => {
    const l = await lab({ url: s.url("nope.img") });
    const r = await getimage(l.config);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`HTTP 404 Not Found for ${s.url("nope.img").replaceAll(".", "\\.")}`));
    assert.equal(s.requests.filter((q) => q.url === "/nope.img").length, 1);
    assert.equal(existsSync(join(l.store, "nope.img.part")), false);
  },
);

test("not enough space in the image store (a small tmpfs) stops before downloading", { skip }, async () => {
  await withServer({ range: true }, async (s) => {
    const l = await lab({ url: s.url("deb.img"), sha256: digest });
    await mkdir(l.store, { recursive: true });
    const m = await ns.run("mount", ["-t", "tmpfs", "-o", "size=8m", "aplspawn-test-store", l.store]);
    assert.equal(m.exitCode, 0, m.stderr);
    try {
      const r = await getimage(l.config);
      assert.equal(r.exitCode, 1, r.stdout);
      assert.match(
        r.stderr,
        /Not enough free space in .*\/images for deb\.img: it needs 68\.0 MiB \(4\.0 MiB to download \+ 64\.0 MiB margin\), and 8\.0 MiB is free/,
      );
      assert.equal(gets(s).length, 0, "it downloaded anyway");
      assert.deepEqual(await ns.run("ls", ["-A", l.store]).then((x) => x.stdout), "");
    } finally {
      await ns.run("umount", [l.store]);
    }
  });
  assert.deepEqual(await ns.snapshot(), start);
});

serverTest(
  "the verified image is a cache: a fault after the download keeps it, the .part never stays",
  { range: true },
  async (s) => {
    const l = await lab({ url: s.url("deb.img"), sha256: digest });
    const r = await getimage(l.config, { APLSPAWN_FAIL_AFTER: "image.download" });
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stdout, /UNDONE \] Removing the partial download of deb\.img/);
    await assertImage(l);
    const again = await getimage(l.config);
    assert.match(again.stdout, /0 changed, 3 unchanged/);
    assert.equal(gets(s).length, 1);

    // A failure during the download (a mismatch) removes the .part and leaves no image.
    const l2 = await lab({ url: s.url("deb.img"), sha256: "e".repeat(64) });
    assert.equal((await getimage(l2.config)).exitCode, 1);
    assert.deepEqual(await readdir(l2.store).then((f) => f.filter((n) => !n.startsWith("."))), []);
  },
);

test("a file:// image with a digest is verified once and then trusted by its stamp", { skip }, async () => {
  const l = await lab({
    url: `file://${join(served, "deb.img")}`,
    checksums: `file://${join(served, "SHA256SUMS")}`,
  });
  const r = await getimage(l.config);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`SHA-256 verified: ${digest}`));
  const again = await getimage(l.config);
  assert.match(again.stdout, /Checking image .*deb\.img \(unchanged\)/);
  const bad = await lab({ url: `file://${join(served, "deb.img")}`, sha256: "e".repeat(64) });
  const b = await getimage(bad.config);
  assert.equal(b.exitCode, 1);
  assert.match(b.stderr, /Checksum mismatch for .*deb\.img: expected e{64} \(image\.sha256\), got/);
  assert.equal(await sha256Of(join(served, "deb.img")), digest, "a local image must never be deleted");
  const missing = await lab({ url: `file://${join(served, "missing.img")}` });
  const m = await getimage(missing.config);
  assert.equal(m.exitCode, 1);
  assert.match(m.stderr, /missing\.img does not exist: set image\.url to an image, or add image\.build/);
});

serverTest(
  "image.maxSize: an oversized image is refused, told by its size or cut off while sent chunked; no .part is left",
  {},
  async (s) => {
    const announced = await lab({ url: s.url("deb.img"), sha256: digest, maxSize: SIZE - 1 });
    const a = await getimage(announced.config);
    assert.equal(a.exitCode, 1, a.stdout);
    assert.match(a.stderr, /deb\.img is 4\.0 MiB, more than image\.maxSize/);
    assert.equal(gets(s).length, 0, "nothing was downloaded");
    // No Content-Length: HEAD cannot tell, so the transfer itself stops at the cap.
    const chunked = await lab({ url: s.url("chunked/deb.img"), sha256: digest, maxSize: 1024 * 1024 });
    const c = await getimage(chunked.config);
    assert.equal(c.exitCode, 1, c.stdout);
    assert.match(c.stderr, /is more than image\.maxSize \(1\.0 MiB\) at .*: the download was deleted/);
    assert.equal(existsSync(chunked.part), false, "the .part was left");
    assert.equal(existsSync(chunked.path), false, "an image was left");
    // Within the cap, chunked works.
    const fits = await lab({ url: s.url("chunked/deb.img"), sha256: digest, maxSize: SIZE });
    assert.equal((await getimage(fits.config)).exitCode, 0);
    await assertImage(fits);
  },
);

test("redirects: followed within https; from https to plain http refused before anything is fetched over it", {
  skip,
}, async () => {
  const cert = join(tmp.path, "cert.pem");
  const key = join(tmp.path, "key.pem");
  await execa("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  const trust = { NODE_EXTRA_CA_CERTS: cert };
  await withServer({ tls: { cert, key } }, async (s) => {
    const ok = await lab({ url: s.tlsUrl("to-https/deb.img"), sha256: digest });
    const r = await getimage(ok.config, trust);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    await assertImage(ok);
    const before = gets(s).length;
    const down = await lab({ url: s.tlsUrl("to-http/deb.img"), sha256: digest });
    const d = await getimage(down.config, trust);
    assert.equal(d.exitCode, 1, d.stdout);
    assert.match(
      d.stderr,
      /refused a redirect from https:\/\/127\.0\.0\.1:\d+ to http:\/\/127\.0\.0\.1:\d+: not https/,
    );
    assert.equal(gets(s).length, before, "the image was fetched over plain http");
    assert.equal(existsSync(down.part), false);
  });
});

test("checksums over plain http are trusted when their signature verifies with image.checksumsKeyring, refused when not", {
  skip,
}, async () => {
  // A signing key of the test's own, as a distribution's release key.
  const home = join(tmp.path, "gnupg");
  await mkdir(home, { mode: 0o700 });
  const gpg = (...args: string[]) => execa("gpg", ["--batch", "--homedir", home, ...args]);
  await gpg(
    "--passphrase",
    "",
    "--quick-gen-key",
    "aplspawn test <t@example.invalid>",
    "ed25519",
    "sign",
    "1d",
  );
  const keyring = join(tmp.path, "release.gpg");
  // Written by gpg itself: a binary key through execa's stdout loses a last byte 0x0a (stripFinalNewline).
  await gpg("--output", keyring, "--export");
  const signed = join(served, "signed");
  await mkdir(signed, { recursive: true });
  await writeFile(join(signed, "SHA256SUMS"), `${digest}  deb.img\n`);
  await gpg("--detach-sign", "--output", join(signed, "SHA256SUMS.gpg"), join(signed, "SHA256SUMS"));
  // The same signature under checksums that say something else.
  const forged = join(served, "forged");
  await mkdir(forged, { recursive: true });
  await writeFile(join(forged, "SHA256SUMS"), `${"e".repeat(64)}  deb.img\n`);
  await execa("cp", [join(signed, "SHA256SUMS.gpg"), join(forged, "SHA256SUMS.gpg")]);
  await withServer({}, async (s) => {
    // The lab of the image whose checksums (and their signature) are in `dir` of the server.
    const checkedBy = (dir: string) =>
      lab({
        url: s.url("deb.img"),
        checksums: s.url(`${dir}/SHA256SUMS`),
        checksumsKeyring: keyring,
        insecure: false,
      });
    const good = await checkedBy("signed");
    const r = await getimage(good.config);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    await assertImage(good);
    const bad = await checkedBy("forged");
    const b = await getimage(bad.config);
    assert.equal(b.exitCode, 1, b.stdout);
    assert.match(
      b.stderr,
      /The signature http:\/\/127\.0\.0\.1:\d+\/forged\/SHA256SUMS\.gpg does not verify with/,
    );
    assert.equal(gets(s).length, 1, "the image was downloaded after a bad signature");
  });
});
