// Images for the real tests, made inside the tests from tiny trees (mksquashfs, mkfs.ext4, sfdisk),
// the driver that runs the attach steps inside a test namespace, the loopback HTTP server, and
// ensureTestImage(): a real `aplspawn image build`, cached outside the repo keyed by its recipe.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before } from "node:test";
import { execa } from "execa";
import { stringify } from "yaml";
import { DEFAULT_PACKAGES } from "../../config/schema.js";
import { type Recipe, recipeKey } from "../../src/image/build-plan.js";
import { rootTypeGuid } from "../../src/image/partition-table.js";
import { findChecksum } from "../../src/image/sha256sums.js";
import { INDEX_DIR } from "../../src/lab/registry.js";
import { CLI, isRoot, type NsSnapshot, TestNamespace, tempDir } from "./ns.js";

/** The script that runs image workflows (attach, detach, status) inside a namespace. */
export const DRIVER = resolve(import.meta.dirname, "bin/image-steps.js");
/** The loopback HTTP server script. */
export const HTTP_SERVER = resolve(import.meta.dirname, "bin/http-server.js");

/** Run a command; throws with its stderr on failure. */
export async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await execa(cmd, args, { input, reject: false });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return String(r.stdout);
}

/** SHA-256 of a file. */
export async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

/** A tiny root tree: enough to tell which image a lower layer came from. */
export async function makeTree(dir: string, marker: string): Promise<string> {
  await mkdir(join(dir, "etc"), { recursive: true });
  await writeFile(join(dir, "etc/os-release"), 'ID=aplspawn-test\nPRETTY_NAME="aplspawn test tree"\n');
  await writeFile(join(dir, "etc/hostname"), "testtree\n");
  await writeFile(join(dir, "marker"), `${marker}\n`);
  return dir;
}

/** Write files into a tree: relative path → content, parent directories made as needed. */
export async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** A bare squashfs of a tree. */
export async function makeSquashfs(tree: string, out: string): Promise<string> {
  await sh("mksquashfs", [tree, out, "-noappend", "-no-progress", "-quiet", "-comp", "gzip"]);
  return out;
}

/** A bare ext4 filesystem holding a tree (mkfs.ext4 -d). */
export async function makeExt4(tree: string, out: string, sizeMiB = 8): Promise<string> {
  await sh("truncate", ["-s", `${sizeMiB}M`, out]);
  await sh("mkfs.ext4", ["-q", "-F", "-d", tree, out]);
  return out;
}

const MIB = 1024 * 1024;

/** A disk image with one partition holding `fsImage`: GPT (type GUID) or MBR (type byte). */
export async function makeDisk(
  fsImage: string,
  out: string,
  o: { table: "gpt" | "dos"; type?: string; extraPartitions?: string[] } = { table: "gpt" },
): Promise<string> {
  const fsSize = (await stat(fsImage)).size;
  const partMiB = Math.max(1, Math.ceil(fsSize / MIB));
  const extra = o.extraPartitions ?? [];
  const total = 1 + extra.length + partMiB + 1;
  await sh("truncate", ["-s", `${total}M`, out]);
  const type = o.type ?? (o.table === "gpt" ? rootTypeGuid() : "83");
  const lines = [`label: ${o.table}`];
  // Extra (non-root) 1 MiB partitions come first, so the root is not simply partition 1.
  extra.forEach((t, i) => {
    lines.push(`start=${(1 + i) * 2048}, size=2048, type=${t}`);
  });
  const rootStartMiB = 1 + extra.length;
  lines.push(`start=${rootStartMiB * 2048}, size=${partMiB * 2048}, type=${type}`);
  await sh("sfdisk", ["--no-reread", "--no-tell-kernel", "--quiet", out], `${lines.join("\n")}\n`);
  await sh("dd", [
    `if=${fsImage}`,
    `of=${out}`,
    "bs=1M",
    `seek=${rootStartMiB}`,
    "conv=notrunc",
    "status=none",
  ]);
  return out;
}

/** Loop devices backed by a file (global: tests must leave none). */
export async function loopsOf(file: string): Promise<string[]> {
  const out = await sh("losetup", ["--list", "--noheadings", "-O", "NAME,BACK-FILE"]);
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter(([, f]) => f === file || f === `${file} (deleted)`)
    .map(([n]) => n!);
}

/** Detach every loop device backed by a file under `dir` (cleanup after a failed test). */
export async function detachLoopsUnder(dir: string): Promise<string[]> {
  const out = await sh("losetup", ["--list", "--noheadings", "-O", "NAME,BACK-FILE"]);
  const found = out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter(([, f]) => f?.startsWith(`${dir}/`))
    .map(([n]) => n!);
  for (const d of found) await execa("losetup", ["-d", d], { reject: false });
  return found;
}

/** What the tests of one file share: a namespace, its state before they ran, a temp directory. */
export interface FileNamespace {
  ns: TestNamespace;
  start: NsSnapshot;
  tmp: { path: string; cleanup(): Promise<void> };
}

/**
 * The namespace and temp directory (named from `prefix`) of one test file's image tests: made before
 * its first test, then given to `setup`; after its last, the loop devices left on files under the
 * directory are detached (a leak fails the file) and both go. As root only: without, the file's
 * tests skip.
 */
export function namespacePerFile(prefix: string, setup: (f: FileNamespace) => Promise<void> | void): void {
  let f: FileNamespace | undefined;
  before(async () => {
    if (!isRoot) return;
    const ns = await TestNamespace.create();
    f = { ns, start: await ns.snapshot(), tmp: await tempDir(prefix) };
    await setup(f);
  });
  after(async () => {
    if (!f) return;
    // Loop devices are global: whatever a failed test left must go, and is reported.
    const left = await detachLoopsUnder(f.tmp.path);
    await f.ns.destroy();
    await f.tmp.cleanup();
    assert.deepEqual(left, [], "loop devices were left behind");
  });
}

/** A test config (YAML) with its workdir in `dir`. */
export async function writeConfig(dir: string, image: Record<string, unknown>, lab = "t"): Promise<string> {
  const file = join(dir, `${lab}.yaml`);
  await writeFile(
    file,
    stringify({
      lab,
      workdir: join(dir, "work"),
      image,
      containers: { machinesDir: join(dir, "machines") },
    }),
  );
  return file;
}

/** Run the image driver inside the namespace: attach, detach or status. */
export function drive(
  ns: TestNamespace,
  action: "attach" | "detach" | "status",
  config: string,
  env: Record<string, string> = {},
) {
  return ns.run(process.execPath, [DRIVER, "--aplspawn-drive", action, config], { env });
}

/** A loopback HTTP server running inside the namespace; `requests` logs what it was asked. */
export interface TestServer {
  port: number;
  url(path: string): string;
  /** The same over https (when started with a certificate). */
  tlsUrl(path: string): string;
  requests: { method: string; url: string; range?: string }[];
  stop(): Promise<void>;
}

/** Start the test HTTP server in the namespace, serving `root`. */
export async function startServer(
  ns: TestNamespace,
  root: string,
  o: { range?: boolean; cutAfter?: number; cutTimes?: number; tls?: { cert: string; key: string } } = {},
): Promise<TestServer> {
  const args = [HTTP_SERVER, "--aplspawn-serve", root, o.range === false ? "norange" : "range"];
  args.push(String(o.cutAfter ?? 0), String(o.cutTimes ?? 0));
  if (o.tls) args.push(o.tls.cert, o.tls.key);
  const child: ChildProcess = ns.spawn(process.execPath, args);
  const requests: TestServer["requests"] = [];
  const lines = createInterface({ input: child.stdout! });
  let tlsPort = 0;
  const port = await new Promise<number>((res, rej) => {
    child.once("exit", (c) => rej(new Error(`test server exited with ${c}`)));
    lines.on("line", (l) => {
      const m = JSON.parse(l) as {
        port?: number;
        tlsPort?: number;
        method?: string;
        url?: string;
        range?: string;
      };
      if (m.tlsPort) tlsPort = m.tlsPort;
      if (m.port) res(m.port);
      else if (m.method)
        requests.push({ method: m.method, url: m.url ?? "", ...(m.range ? { range: m.range } : {}) });
    });
  });
  return {
    port,
    url: (p) => `http://127.0.0.1:${port}/${p}`,
    tlsUrl: (p) => `https://127.0.0.1:${tlsPort}/${p}`,
    requests,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
    },
  };
}

// ---- ensureTestImage ----------------------------------------------------------------------------

/** Where built test images are cached (outside the repo, kept across runs). */
export const TEST_CACHE = "/var/cache/aplspawn-test";

/** The recipe of the test image: the default one (bookworm, systemd, sshd, python3, sudo…). */
export const TEST_RECIPE: Recipe = {
  suite: "bookworm",
  mirror: "http://deb.debian.org/debian",
  packages: DEFAULT_PACKAGES,
  arch: process.arch,
};

// A debootstrap tree another process may have built already: reused when it holds the recipe.
const CACHED_TREE = join(TEST_CACHE, "rootfs-bookworm");

async function treeMatches(tree: string, r: Recipe): Promise<boolean> {
  try {
    const log = await readFile(join(TEST_CACHE, "debootstrap.log"), "utf8");
    if (!/done 0\s*$/.test(log)) return false;
    const version = await readFile(join(tree, "etc/debian_version"), "utf8");
    if (r.suite !== "bookworm" || !version.startsWith("12.")) return false;
    const status = await readFile(join(tree, "var/lib/dpkg/status"), "utf8");
    const installed = new Set(
      status
        .split("\n\n")
        .filter((s) => /^Status: install ok installed$/m.test(s))
        .map((s) => /^Package: (.+)$/m.exec(s)?.[1]),
    );
    return r.packages.every((p) => installed.has(p));
  } catch {
    return false;
  }
}

const memo = new Map<string, Promise<{ path: string; sha256: string }>>();

/**
 * The image `aplspawn image build` makes from a recipe (by default the default one: GPT + squashfs,
 * boots with systemd-nspawn --boot and runs sshd). Built once, for real, and cached under
 * TEST_CACHE keyed by the recipe; later calls (and runs) only check its digest.
 */
export function ensureTestImage(recipe: Recipe = TEST_RECIPE): Promise<{ path: string; sha256: string }> {
  const key = recipeKey(recipe);
  let p = memo.get(key);
  if (!p) {
    p = buildTestImage(recipe).catch((e) => {
      memo.delete(key);
      throw e;
    });
    memo.set(key, p);
  }
  return p;
}

async function cached(path: string): Promise<{ path: string; sha256: string } | undefined> {
  try {
    const digest = findChecksum(await readFile(join(dirname(path), "SHA256SUMS"), "utf8"), basename(path));
    if (digest && (await sha256Of(path)) === digest) return { path, sha256: digest };
  } catch {}
  return undefined;
}

async function buildTestImage(recipe: Recipe): Promise<{ path: string; sha256: string }> {
  const dir = join(TEST_CACHE, `image-${recipeKey(recipe)}`);
  const path = join(dir, `debian-${recipe.suite}.img`);
  const hit = await cached(path);
  if (hit) return hit;
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), "aplspawn-imagebuild-"));
  try {
    const build = { suite: recipe.suite, mirror: recipe.mirror, packages: recipe.packages };
    const config = await writeConfig(work, { url: `file://${path}`, build });
    const reuse = await treeMatches(CACHED_TREE, recipe);
    // From scratch (a fresh CI machine) this is getimage building the missing file:// image; with a
    // debootstrap tree of the same recipe at hand, `image build --rootfs` skips the download.
    const cli = reuse
      ? [CLI, "-c", config, "image", "build", "--rootfs", CACHED_TREE]
      : [CLI, "-c", config, "run", "getimage"];
    // flock: concurrent test files wait for one build; unshare: nothing debootstrap mounts can leak,
    // and the host's index of labs is a private tmpfs there (the build's lab is not the host's).
    await mkdir(INDEX_DIR, { recursive: true, mode: 0o700 });
    const r = await lockedPrivate(
      join(TEST_CACHE, `image-${recipeKey(recipe)}.lock`),
      'set -e; mount -t tmpfs -o mode=0700 aplspawn-test-index "$1"; shift; exec "$@"',
      [INDEX_DIR, process.execPath, ...cli],
      60 * 60 * 1000,
    );
    if (r.exitCode !== 0) throw new Error(`building the test image failed (exit ${r.exitCode}):\n${r.all}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const done = await cached(path);
  if (!done) throw new Error(`the test image build left no verified image at ${path}`);
  return done;
}

/**
 * `sh -c script sh args…` holding the lock file (flock: one at a time across test files) in a mount
 * namespace of its own (unshare, private propagation: nothing it mounts leaks). Never rejects.
 */
export function lockedPrivate(lock: string, script: string, args: readonly string[], timeout: number) {
  return execa(
    "flock",
    [lock, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", ...args],
    {
      reject: false,
      all: true,
      timeout,
    },
  );
}
