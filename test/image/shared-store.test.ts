// One image store, many labs (issue #29, item 2): labs of one workdir getting one URL at once download
// it once (the others wait, saying so, and reuse it), the stamp is written only for bytes hashed from
// the file itself, a lab's rollback leaves another lab's download alone, and purge keeps an image that
// another lab has attached. Real `run getimage` runs against the loopback test server, in one
// namespace; the labs share `<workdir>/images`.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { stringify } from "yaml";
import type { Host } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";
import { sha256File, writeStamp } from "../../src/image/image-host.js";
import { stampPath } from "../../src/image/stamp.js";
import { imageLockPath } from "../../src/image/store-lock.js";
import {
  drive,
  type FileNamespace,
  loopsOf,
  makeDisk,
  makeSquashfs,
  makeTree,
  namespacePerFile,
  sha256Of,
  startServer,
} from "../support/image.js";
import { CLI, type NsResult, skip, type TestNamespace } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

const SIZE = 8 * 1024 * 1024;

let ns: TestNamespace;
let tmp: FileNamespace["tmp"];
let served: string;

namespacePerFile("aplspawn-store-", async (f) => {
  ({ ns, tmp } = f);
  served = join(tmp.path, "served");
  await mkdir(served, { recursive: true });
});

/** N labs (l0, l1, …) of one workdir, so one image store, all of the image `image`. */
async function labsOf(n: number, image: Record<string, unknown>) {
  const dir = await mkdtemp(join(tmp.path, "labs-"));
  const store = join(dir, "work", "images");
  const labs = [];
  for (let i = 0; i < n; i++) {
    const config = join(dir, `l${i}.yaml`);
    const c = {
      lab: `l${i}`,
      workdir: join(dir, "work"),
      image,
      containers: { machinesDir: join(dir, `m${i}`) },
    };
    await writeFile(config, stringify(c));
    labs.push({ i, config });
  }
  return { dir, store, labs };
}

const cli = (config: string, args: string[]) => ns.cli(["-c", config, ...args]);

/** What a stamp file says, and whether it describes the file as it is now. */
async function stampOf(store: string, image: string) {
  const s = JSON.parse(await readFile(stampPath(store, image), "utf8")) as {
    sha256: string;
    identity: { size: number; ino: string; mtime: string; ctime: string };
  };
  const st = await stat(image, { bigint: true });
  const matches = s.identity.ino === String(st.ino) && s.identity.size === Number(st.size);
  return { sha256: s.sha256, matches };
}

test("four labs get one URL at once from a server that gives clients different bodies: only what the digest names is kept and stamped", {
  skip,
}, async () => {
  // Bodies of equal length: the k-th GET gets variant k mod 4. Wrong, right, wrong, right: the
  // first to download gets a wrong one and must fail on its own, cleanly; one more download follows.
  const good = randomBytes(SIZE);
  const wrong = [randomBytes(SIZE), randomBytes(SIZE)];
  await writeFile(join(served, "img.raw.0"), wrong[0]!);
  await writeFile(join(served, "img.raw.1"), good);
  await writeFile(join(served, "img.raw.2"), wrong[1]!);
  await writeFile(join(served, "img.raw.3"), good);
  const digest = await sha256Of(join(served, "img.raw.1"));
  const wrongDigests = await Promise.all([0, 2].map((k) => sha256Of(join(served, `img.raw.${k}`))));
  const s = await startServer(ns, served);
  try {
    // 512 KiB every 10 ms: a download takes a while, so labs that do not wait for each other overlap.
    const { store, labs } = await labsOf(4, { url: s.url("variants/4/512/img.raw"), sha256: digest });
    const image = join(store, "img.raw");
    const runs = await Promise.all(labs.map((l) => cli(l.config, ["run", "getimage"])));
    const gets = s.requests.filter((r) => r.method === "GET" && r.url === "/variants/4/512/img.raw");
    // The bodies served, in order (variant k mod 4): which were wrong, and their digests.
    const servedWrong = gets.map((_, k) => k % 4).filter((v) => v === 0 || v === 2);
    const failed = runs.filter((r) => r.exitCode !== 0);
    for (const r of failed) {
      // A failure is a checksum error naming one whole wrong body this lab got by itself.
      const m =
        /Checksum mismatch for img\.raw: expected (\w+) \(image\.sha256\), got (\w+); the download was deleted/.exec(
          r.stderr,
        );
      assert.ok(m, `a lab failed other than on a wrong body of its own:\n${r.stdout}${r.stderr}`);
      assert.equal(m[1], digest);
      assert.ok(wrongDigests.includes(m[2]!), `the digest it got (${m[2]}) is no body the server sent whole`);
    }
    const got = failed.map((r) => /got (\w+)/.exec(r.stderr)?.[1]);
    assert.equal(new Set(got).size, got.length, "two labs failed on one wrong body (they shared a download)");
    assert.equal(failed.length, servedWrong.length, "each wrong body served failed exactly one lab");
    assert.ok(failed.length < runs.length, "some lab got the image");
    // One right download, after the wrong ones (each failed lab's own); the others reused it.
    assert.equal(gets.length, failed.length + 1, `GETs: ${gets.length}, failures: ${failed.length}`);
    const ok = runs.filter((r) => r.exitCode === 0);
    assert.equal(ok.filter((r) => r.stdout.includes(`SHA-256 verified: ${digest}`)).length, 1);
    // A lab that came while the download ran waited and reused it; one that started after it was
    // stamped (a slow start on a loaded host) found it verified and had nothing to do.
    for (const r of ok.filter((x) => !x.stdout.includes("SHA-256 verified")))
      assert.match(
        r.stdout,
        /img\.raw was downloaded meanwhile \(by another lab\): verified, reusing it|Downloading image img\.raw to .* \(unchanged\)/,
      );
    assert.ok(
      runs.filter((r) => /Waiting for lab l\d \(PID \d+, downloading since /.test(r.stdout)).length >= 1,
      "a lab that waited said so, and for whom",
    );
    // Exactly what the digest names is kept, and the stamp describes exactly that file.
    assert.equal(await sha256Of(image), digest, "the image kept is not what the digest names");
    const st = await stampOf(store, image);
    assert.equal(st.sha256, digest);
    assert.ok(st.matches, "the stamp describes another file than the one kept");
    assert.deepEqual(
      (await readdir(store)).sort(),
      [".stamps", "img.raw"],
      "a .part or another file is left",
    );
    // This image's lock only: /run/aplspawn is the host's, and labs of tests running beside this
    // one hold their own images' locks meanwhile.
    assert.ok(!existsSync(imageLockPath(image)), "the image's lock file is left");
    // And every lab now finds it verified: nothing to do.
    for (const l of labs) {
      const again = await cli(l.config, ["run", "getimage"]);
      assert.equal(again.exitCode, 0, again.stderr);
      assert.match(again.stdout, /0 changed/);
    }
  } finally {
    await s.stop();
  }
});

test("three run getimage at once on a fresh store: all succeed, one download", { skip }, async () => {
  await writeFile(join(served, "three.img"), randomBytes(SIZE));
  const digest = await sha256Of(join(served, "three.img"));
  await copyFile(join(served, "three.img"), join(served, "three.img.0"));
  const s = await startServer(ns, served);
  try {
    // 64 KiB every 10 ms: over a second for the 8 MiB, so the three overlap.
    const { labs } = await labsOf(3, { url: s.url("variants/1/64/three.img"), sha256: digest });
    const runs = await Promise.all(labs.map((l) => cli(l.config, ["run", "getimage"])));
    for (const r of runs) assert.equal(r.exitCode, 0, `${r.stdout}${r.stderr}`);
    const gets = s.requests.filter((r) => r.method === "GET" && r.url === "/variants/1/64/three.img");
    assert.equal(gets.length, 1, "downloaded more than once");
    assert.equal(runs.filter((r) => r.stdout.includes(`SHA-256 verified: ${digest}`)).length, 1);
    assert.equal(runs.filter((r) => /downloaded meanwhile \(by another lab\)/.test(r.stdout)).length, 2);
  } finally {
    await s.stop();
  }
});

/** A CLI run inside the namespace that the test can watch and interrupt. */
function watch(config: string, args: string[]) {
  const child = ns.spawn(process.execPath, [CLI, "-c", config, ...args]);
  let stdout = "";
  let stderr = "";
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => {
    stdout += `${l}\n`;
    lines.push(l);
  });
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<NsResult>((res) =>
    child.once("exit", (code) => res({ exitCode: code ?? -1, stdout, stderr })),
  );
  const saw = (re: RegExp) => waitFor(() => lines.some((l) => re.test(l)), 30_000, 50);
  return { child, done, saw };
}

test("a lab interrupted while it waits for another's download rolls back without touching that download", {
  skip,
}, async () => {
  await writeFile(join(served, "slow.img"), randomBytes(SIZE));
  const digest = await sha256Of(join(served, "slow.img"));
  await copyFile(join(served, "slow.img"), join(served, "slow.img.0"));
  const s = await startServer(ns, served);
  try {
    // 8 KiB every 10 ms: 10 s or more for the 8 MiB, so lab A still downloads when lab B rolls back
    // (B's start, wait and rollback took 7 s on a loaded host: 5 s of download were not enough).
    const { store, labs } = await labsOf(2, { url: s.url("variants/1/8/slow.img"), sha256: digest });
    const a = watch(labs[0]!.config, ["run", "getimage"]);
    await waitFor(() => existsSync(join(store, "slow.img.part")), 12_000, 20);
    assert.ok(existsSync(join(store, "slow.img.part")), "lab A did not start its download");
    const b = watch(labs[1]!.config, ["run", "getimage"]);
    assert.ok(await b.saw(/Waiting for lab l0/), "lab B did not say it waits for lab A");
    b.child.kill("SIGINT");
    const rb = await b.done;
    assert.equal(rb.exitCode, 130, `${rb.stdout}${rb.stderr}`);
    assert.match(rb.stdout, /Another lab is downloading slow\.img now: its .*slow\.img\.part stays/);
    const ra = await a.done;
    assert.equal(ra.exitCode, 0, `lab A's download was disturbed:\n${ra.stdout}${ra.stderr}`);
    assert.equal(await sha256Of(join(store, "slow.img")), digest);
    assert.equal(existsSync(join(store, "slow.img.part")), false);
  } finally {
    await s.stop();
  }
});

test("purge keeps an image another lab has attached, and the last lab's purge deletes it", {
  skip,
}, async () => {
  const disk = await makeDisk(
    await makeSquashfs(await makeTree(join(tmp.path, "t-purge"), "purge"), join(tmp.path, "purge.squashfs")),
    join(served, "purge.img"),
    { table: "gpt" },
  );
  const digest = await sha256Of(disk);
  const s = await startServer(ns, served);
  try {
    const { store, labs } = await labsOf(2, { url: s.url("purge.img"), sha256: digest });
    const [a, b] = [labs[0]!, labs[1]!];
    const image = join(store, "purge.img");
    assert.equal((await cli(a.config, ["run", "getimage"])).exitCode, 0);
    // Lab B attaches the image (the steps `run up` attaches it with).
    const attached = await drive(ns, "attach", b.config);
    assert.equal(attached.exitCode, 0, attached.stdout + attached.stderr);
    const purged = await cli(a.config, ["run", "down", "--purge"]);
    assert.equal(purged.exitCode, 0, purged.stdout + purged.stderr);
    assert.match(
      purged.stdout,
      /purge\.img is kept: loop devices still hold it \(\/dev\/loop\d+ \(.*l1\/lower\)\)/,
    );
    assert.equal(await sha256Of(image), digest, "the image another lab uses was deleted");
    assert.equal((await drive(ns, "detach", b.config)).exitCode, 0);
    assert.deepEqual(await loopsOf(image), []);
    const last = await cli(b.config, ["run", "down", "--purge"]);
    assert.equal(last.exitCode, 0, last.stdout + last.stderr);
    assert.equal(existsSync(image), false, "the last lab's purge kept the image");
    assert.equal(existsSync(stampPath(store, image)), false, "the stamp was left");
  } finally {
    await s.stop();
  }
});

test("a file written while it is hashed is never stamped: the digest and the identity are the fd's", {
  skip,
}, async () => {
  const file = join(tmp.path, "hashed.img");
  await writeFile(file, randomBytes(3 * 8 * 1024 * 1024));
  const real = realHost();
  // Another writer changes the first bytes right after the hash read them (between two reads).
  let reads = 0;
  const host: Host = {
    ...real,
    fs: {
      ...real.fs,
      async openRead(p) {
        const f = await real.fs.openRead(p);
        return (
          f && {
            ...f,
            async read(pos, len) {
              const b = await f.read(pos, len);
              if (reads++ === 0) await writeFile(file, randomBytes(16), { flag: "r+" });
              return b;
            },
          }
        );
      },
    },
  };
  const ctx = { host, signal: new AbortController().signal };
  await assert.rejects(
    sha256File(ctx, file),
    /changed while it was hashed \(another writer\?\): not verified/,
  );
  // Hashed undisturbed, then written before the stamp: not stamped either.
  const hashed = await sha256File({ host: real, signal: ctx.signal }, file);
  await writeFile(file, randomBytes(16), { flag: "r+" });
  const stamp = join(tmp.path, "stamps", "hashed.json");
  await assert.rejects(
    writeStamp({ host: real, signal: ctx.signal }, stamp, file, hashed),
    /changed after it was hashed \(another writer\?\): not stamped as verified/,
  );
  assert.equal(existsSync(stamp), false);
});
