// The small pure parsers and planners of the image area: superblocks, SHA256SUMS, Range responses,
// losetup and mountinfo output, stamps, the build's geometry, progress lines, and step composition.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../config/load.js";
import { mountAt, mountsUnder, parseMountinfo } from "../../src/host/mounts.js";
import { debootstrapArgs, diskGeometry, recipeKey, sfdiskScript } from "../../src/image/build-plan.js";
import {
  DOWNLOAD_RETRY,
  DownloadError,
  isRetryableError,
  parseContentRange,
  resumeDecision,
  spaceNeeded,
} from "../../src/image/http.js";
import { formatBar, formatBytes, formatPlain, TransferProgress } from "../../src/image/progress.js";
import { findChecksum, parseSha256Sums, upsertSha256Sums } from "../../src/image/sha256sums.js";
import { makeStamp, parseStamp, stampMatches, stampPath } from "../../src/image/stamp.js";
import { detectFilesystem, readOnlyMountOptions } from "../../src/image/superblock.js";
import { parseLosetupJson } from "../../src/image/system-info.js";
import { listTaskIds } from "../../src/runner/task.js";
import { attachSteps, detachSteps } from "../../workflows/attach.js";
import { getimageSteps, purgeImageSteps } from "../../workflows/getimage.js";

test("superblocks: each filesystem by its magic, nothing for zeros", () => {
  const b = () => Buffer.alloc(0x10000 + 4096);
  const sq = b();
  sq.write("hsqs", 0, "latin1");
  sq.writeUInt16LE(4, 28);
  assert.equal(detectFilesystem(sq), "squashfs");
  sq.writeUInt16LE(3, 28); // squashfs 3 is not mountable
  assert.equal(detectFilesystem(sq), undefined);
  const xfs = b();
  xfs.write("XFSB", 0, "latin1");
  assert.equal(detectFilesystem(xfs), "xfs");
  const erofs = b();
  erofs.writeUInt32LE(0xe0f5e1e2, 1024);
  assert.equal(detectFilesystem(erofs), "erofs");
  const ext = b();
  ext.writeUInt16LE(0xef53, 1080);
  assert.equal(detectFilesystem(ext), "ext4");
  const btrfs = b();
  btrfs.write("_BHRfS_M", 0x10040, "latin1");
  assert.equal(detectFilesystem(btrfs), "btrfs");
  assert.equal(detectFilesystem(b()), undefined);
  assert.equal(detectFilesystem(Buffer.alloc(10)), undefined);
  assert.equal(readOnlyMountOptions("ext4"), "ro,noload");
  assert.equal(readOnlyMountOptions("squashfs"), "ro");
});

const D1 = "a".repeat(64);
const D2 = "B".repeat(64);

test("SHA256SUMS: text and binary mode, BSD form, ./ prefixes, CRLF, junk", () => {
  const text = [
    "# comment",
    `${D1}  debian.img`,
    `${D2} *other.img\r`,
    `SHA256 (bsd.img) = ${"c".repeat(64)}`,
    `${"d".repeat(64)}  ./sub/dir.img`,
    "garbage line",
    "",
  ].join("\n");
  assert.equal(parseSha256Sums(text).length, 4);
  assert.equal(findChecksum(text, "debian.img"), D1);
  assert.equal(findChecksum(text, "other.img"), D2.toLowerCase());
  assert.equal(findChecksum(text, "bsd.img"), "c".repeat(64));
  assert.equal(findChecksum(text, "dir.img"), "d".repeat(64));
  assert.equal(findChecksum(text, "missing.img"), undefined);
  // A name that only looks like a suffix of another does not match.
  assert.equal(findChecksum(`${D1}  xdebian.img\n`, "debian.img"), undefined);
  const up = upsertSha256Sums(`${D2} *keep.img\n${D2} *debian.img\n`, D1, "debian.img");
  assert.equal(up, `${D2} *keep.img\n${D1} *debian.img\n`);
  assert.equal(upsertSha256Sums("", D1, "x.img"), `${D1} *x.img\n`);
});

test("Range responses: append, restart when ignored or misplaced, complete, fail", () => {
  assert.deepEqual(parseContentRange("bytes 100-199/200"), { start: 100, end: 199, total: 200 });
  assert.equal(parseContentRange("bytes 100-99/200"), undefined);
  assert.equal(parseContentRange("nonsense"), undefined);
  assert.deepEqual(resumeDecision(200, { "content-length": "50" }, 0), { action: "append", total: 50 });
  const ignored = resumeDecision(200, { "content-length": "50" }, 10);
  assert.equal(ignored.action, "restart");
  assert.match((ignored as { reason: string }).reason, /ignores Range/);
  assert.deepEqual(resumeDecision(206, { "content-range": "bytes 10-49/50" }, 10), {
    action: "append",
    total: 50,
  });
  assert.equal(resumeDecision(206, { "content-range": "bytes 0-49/50" }, 10).action, "restart");
  assert.deepEqual(resumeDecision(416, { "content-range": "bytes */50" }, 50), {
    action: "complete",
    total: 50,
  });
  assert.equal(resumeDecision(416, { "content-range": "bytes */50" }, 60).action, "restart");
  assert.equal(resumeDecision(304, {}, 0).action, "fail");
});

test("retry policy: network errors and 'later' statuses retry, others stop; one list for both", () => {
  assert.equal(isRetryableError(Object.assign(new Error("x"), { code: "ECONNRESET" })), true);
  assert.equal(isRetryableError(new TypeError("terminated", { cause: { code: "UND_ERR_SOCKET" } })), true);
  assert.equal(isRetryableError(new DownloadError("HTTP 404", false)), false);
  assert.equal(isRetryableError(new DownloadError("closed early", true)), true);
  assert.equal(isRetryableError(new Error("EACCES: permission denied")), false);
  // A cut in the body is resumed after exactly the failures the request itself is retried on.
  for (const code of DOWNLOAD_RETRY.errorCodes)
    assert.equal(isRetryableError(Object.assign(new Error("x"), { code })), true, code);
  assert.equal(spaceNeeded(100, 40, 10), 70);
});

test("losetup JSON and mountinfo parsing", () => {
  const loops = parseLosetupJson(
    JSON.stringify({
      loopdevices: [
        {
          name: "/dev/loop3",
          "back-file": "/img/a b.img (deleted)",
          "back-ino": 42,
          "back-maj:min": "     254:0  ",
          offset: 1048576,
          sizelimit: 0,
          ro: true,
          autoclear: false,
        },
      ],
    }),
  );
  assert.deepEqual(loops[0], {
    name: "/dev/loop3",
    backFile: "/img/a b.img",
    backIno: "42",
    backDev: "254:0",
    offset: 1048576,
    sizelimit: 0,
    ro: true,
    autoclear: false,
    deleted: true,
  });
  assert.deepEqual(parseLosetupJson(""), []);
  const mi = parseMountinfo(
    [
      "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
      "40 22 7:3 / /var/lib/my\\040lab/lower ro,relatime - squashfs /dev/loop3 ro,errors=continue",
      "41 40 0:50 / /var/lib/my\\040lab/lower/proc rw - proc proc rw",
      "42 22 254:0 /srv/tree /x ro,relatime master:3 - ext4 /dev/vda rw",
    ].join("\n"),
  );
  assert.equal(mi.length, 4);
  const lower = mountAt(mi, "/var/lib/my lab/lower/");
  assert.equal(lower?.source, "/dev/loop3");
  assert.equal(lower?.dev, "7:3");
  assert.deepEqual(lower?.options, ["ro", "relatime"]);
  assert.equal(mountAt(mi, "/x")?.root, "/srv/tree");
  assert.deepEqual(
    mountsUnder(mi, "/var/lib/my lab/lower").map((m) => m.id),
    [41, 40],
  );
  assert.deepEqual(mountsUnder(mi, "/var/lib/my lab/low"), []);
});

test("stamps: valid only for the same file, unchanged", () => {
  const id = {
    size: 1024,
    ino: "77",
    dev: "254:0",
    mtime: "1700000000.123456789",
    ctime: "1700000001.000000000",
  };
  const s = makeStamp("/s/a.img", id, D1, "http://x/SHA256SUMS");
  const back = parseStamp(JSON.stringify(s));
  assert.ok(back);
  assert.equal(stampMatches(back, "/s/a.img", id), true);
  assert.equal(stampMatches(back, "/s/b.img", id), false);
  assert.equal(stampMatches(back, "/s/a.img", { ...id, ctime: "1700000002.0" }), false);
  assert.equal(stampMatches(back, "/s/a.img", { ...id, size: 1025 }), false);
  assert.equal(parseStamp("{"), undefined);
  assert.equal(parseStamp('{"format":"other"}'), undefined);
  assert.notEqual(stampPath("/s", "/a/x.img"), stampPath("/s", "/b/x.img"));
  assert.match(stampPath("/s", "/a/x.img"), /^\/s\/\.stamps\/x\.img-[0-9a-f]{12}\.json$/);
});

test("build plan: geometry, sfdisk script, debootstrap argv, recipe key", () => {
  const g = diskGeometry(5 * 1024 * 1024 + 1);
  assert.deepEqual(g, {
    size: 8 * 1024 * 1024,
    partitionOffset: 1024 * 1024,
    partitionSize: 6 * 1024 * 1024,
  });
  assert.equal(
    sfdiskScript(g, "x64"),
    'label: gpt\nstart=2048, size=12288, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name="root-x86-64"\n',
  );
  const r = {
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    packages: ["sudo", "dbus"],
    arch: "x64",
  };
  assert.deepEqual(debootstrapArgs(r, "/t/root"), [
    "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
    "--force-check-gpg",
    "--variant=minbase",
    "--arch=amd64",
    "--include=sudo,dbus",
    "bookworm",
    "/t/root",
    "http://deb.debian.org/debian",
  ]);
  // The key ignores package order and a trailing slash, and changes with the content.
  assert.equal(recipeKey(r), recipeKey({ ...r, packages: ["dbus", "sudo"], mirror: `${r.mirror}/` }));
  assert.notEqual(recipeKey(r), recipeKey({ ...r, packages: ["dbus"] }));
  assert.notEqual(recipeKey(r), recipeKey({ ...r, suite: "trixie" }));
});

test("progress: cli-progress bar on a terminal, plain lines every 10 % or 5 s elsewhere", () => {
  const bar = formatBar({ value: 50 * 1048576, total: 100 * 1048576, rate: 10 * 1048576, eta: 5 });
  assert.match(bar, /^\[█{15}░{15}\] {2}50% \| 50\.0 MiB \/ 100\.0 MiB \| 10\.0 MiB\/s \| ETA 5s$/);
  assert.match(formatBar({ value: 10, total: undefined, rate: 1, eta: undefined }), /size unknown/);
  assert.equal(
    formatPlain({ value: 45, total: 100, rate: 2048, eta: 125 }),
    "45 % of 100 B (45 B), 2.0 KiB/s, 2m05s left",
  );
  assert.equal(formatBytes(1536), "1.5 KiB");

  let now = 0;
  const lines: string[] = [];
  const p = new TransferProgress({ tty: false, emit: (l) => lines.push(l), total: 1000, now: () => now });
  for (let v = 0; v <= 1000; v += 10) {
    now += 10; // 10 ms per step: 1 s in all, so only the 10 % steps emit
    p.update(v);
  }
  assert.equal(lines.length, 11, lines.join("\n")); // the first update, then one per 10 %
  assert.match(lines.at(-1)!, /^100 % of 1000 B/);

  const slow: string[] = [];
  now = 0;
  const q = new TransferProgress({ tty: false, emit: (l) => slow.push(l), total: 1_000_000, now: () => now });
  for (let i = 0; i < 30; i++) {
    now += 1000;
    q.update(i); // far below 10 %: only the time rule applies
  }
  assert.equal(slow.length, 6); // at 1 s, then every 5 s

  const tty: string[] = [];
  now = 0;
  const t = new TransferProgress({
    tty: true,
    emit: (l) => tty.push(l),
    total: 100,
    start: 50,
    now: () => now,
  });
  t.update(60);
  now += 10;
  t.update(70); // within 150 ms: not redrawn
  now += 200;
  t.update(80);
  assert.equal(tty.length, 2);
  assert.match(tty[1]!, /^\[.*\]\s+80% \| 80 B \/ 100 B/);
});

const cfg = (image: Record<string, unknown>) =>
  parseConfig(JSON.stringify({ workdir: "/w", lab: "l", image }), "test.yaml");

test("getimage steps: download for http(s), build-then-verify for a file with a recipe", () => {
  const http = getimageSteps(cfg({ url: "https://h/x/deb.img", checksums: "https://h/x/SHA256SUMS" }));
  assert.deepEqual(listTaskIds(http), ["image.dirs", "image.precheck", "image.download"]);
  const p = (http[2] as { params: Record<string, unknown> }).params;
  assert.equal(p.path, "/w/images/deb.img");
  assert.equal(p.name, "deb.img");
  assert.equal(p.checksums, "https://h/x/SHA256SUMS");
  const built = getimageSteps(cfg({ url: "file:///i/deb.img", build: {} }));
  assert.deepEqual(listTaskIds(built), ["image.build", "image.verify"]);
  const recipe = (built[0] as { params: { recipe: { packages: string[]; arch: string } } }).params.recipe;
  assert.ok(recipe.packages.includes("openssh-server"));
  assert.equal(recipe.arch, process.arch);
  assert.deepEqual(listTaskIds(getimageSteps(cfg({ url: "file:///i/deb.img" }))), ["image.verify"]);
  assert.deepEqual(listTaskIds(purgeImageSteps(cfg({ url: "https://h/deb.img", insecure: true }))), [
    "image.purge",
  ]);
  assert.deepEqual(purgeImageSteps(cfg({ url: "file:///i/deb.img" })), []);
  // Everything a rollback needs is in the params, and they are JSON.
  for (const s of [...http, ...built]) assert.doesNotThrow(() => JSON.stringify(s));
});

test("attach steps: loop then lower; detach undoes exactly those kinds from the journal", () => {
  const c = cfg({ url: "file:///i/deb.img", loopDevice: "/dev/loop7" });
  const steps = attachSteps(c);
  assert.deepEqual(listTaskIds(steps), ["image.loop", "image.lower"]);
  assert.deepEqual((steps[0] as { params: unknown }).params, {
    image: "/i/deb.img",
    lowerDir: "/w/l/lower",
    loopDevice: "/dev/loop7",
  });
  const [d] = detachSteps();
  assert.equal(d?.type, "undo");
  if (d?.type !== "undo") return;
  assert.equal(d.select({ id: "image.lower", kind: "image.lower" }), true);
  assert.equal(d.select({ id: "image.loop", kind: "image.loop" }), true);
  assert.equal(d.select({ id: "image.download", kind: "image.download" }), false);
  assert.equal(d.select({ id: "net.bridge", kind: "net.bridge" }), false);
});
