// Host reads shared by the image tasks: file identity, hashing, the image's layout, loop devices,
// mounts, checksums and stamps. Everything goes through ctx.host.
import { createHash, randomBytes } from "node:crypto";
import { basename } from "node:path";
import { ExitError } from "../errors.js";
import type { FileStat, HostContext, ReadableFile } from "../host/host.js";
import { type MountInfo, mountsUnder, readMounts } from "../host/mounts.js";
import { undoUnlessGone } from "../runner/task.js";
import { type ImageLayout, readImageLayout } from "./partition-table.js";
import { formatBytes } from "./progress.js";
import { findChecksum } from "./sha256sums.js";
import { type FileIdentity, makeStamp, parseStamp, type Stamp, stampMatches } from "./stamp.js";
import { detectFilesystem, type FsType, SUPERBLOCK_PROBE_BYTES } from "./superblock.js";
import type { LoopInfo } from "./system-info.js";

/** A file's identity (size, inode, times), or undefined when it does not exist. */
export async function fileIdentity(ctx: HostContext, path: string): Promise<FileIdentity | undefined> {
  const s = await ctx.host.fs.stat(path);
  return s && { size: s.size, ino: s.inoId, dev: s.devId, mtime: s.mtime, ctime: s.ctime };
}

const HASH_CHUNK = 8 * 1024 * 1024;

/** A FileStat's identity (what a stamp records). */
export const identityOf = (s: FileStat): FileIdentity => ({
  size: s.size,
  ino: s.inoId,
  dev: s.devId,
  mtime: s.mtime,
  ctime: s.ctime,
});

const sameIdentity = (a: FileIdentity, b: FileIdentity) =>
  a.size === b.size && a.ino === b.ino && a.dev === b.dev && a.mtime === b.mtime && a.ctime === b.ctime;

/** What hashing a file found: its digest, and the identity it had from the first byte read to the last. */
export interface Hashed {
  sha256: string;
  identity: FileIdentity;
}

/**
 * SHA-256 of a file open for reading, every byte read through that one fd (never by path again: the
 * name may be replaced meanwhile), reporting progress as it goes. The file must not change while it
 * is hashed (its size, times and inode the same after the last read as before the first): then the
 * digest is that of the bytes the identity names, and a stamp of both says the truth.
 */
export async function sha256Open(
  ctx: HostContext,
  f: ReadableFile,
  path: string,
  onProgress?: (done: number, total: number) => void,
): Promise<Hashed> {
  const before = identityOf(await f.stat());
  const h = createHash("sha256");
  let pos = 0;
  for (;;) {
    ctx.signal.throwIfAborted();
    const buf = await f.read(pos, HASH_CHUNK);
    if (buf.length === 0) break;
    h.update(buf);
    pos += buf.length;
    onProgress?.(pos, before.size);
  }
  const after = identityOf(await f.stat());
  if (!sameIdentity(before, after) || pos !== after.size)
    throw new ExitError(`${path} changed while it was hashed (another writer?): not verified`);
  return { sha256: h.digest("hex"), identity: after };
}

/** SHA-256 of a regular file, read through one fd: see sha256Open. */
export async function sha256File(
  ctx: HostContext,
  path: string,
  onProgress?: (done: number, total: number) => void,
): Promise<Hashed> {
  if (!(await ctx.host.fs.exists(path))) throw new ExitError(`${path} does not exist`);
  // A file:// image may be the user's link to their file: the file is what is read (and stamped).
  const f = await ctx.host.fs.openRead(await ctx.host.fs.realpath(path));
  if (!f) throw new ExitError(`${path} does not exist`);
  try {
    return await sha256Open(ctx, f, path, onProgress);
  } finally {
    await f.close();
  }
}

/**
 * Rename a file that was hashed through the open `f` into place, and return what it is there: the
 * same inode, size and contents' time as hashed (a rename changes only its ctime), or an error.
 */
export async function renameHashed(
  ctx: HostContext,
  f: ReadableFile,
  hashed: Hashed,
  from: string,
  to: string,
): Promise<Hashed> {
  await ctx.host.fs.rename(from, to);
  const now = identityOf(await f.stat());
  const at = await fileIdentity(ctx, to);
  const h = hashed.identity;
  if (now.ino !== h.ino || now.dev !== h.dev || now.size !== h.size || now.mtime !== h.mtime)
    throw new ExitError(`${from} changed after it was hashed (another writer?): not verified`);
  if (!at || at.ino !== now.ino || at.dev !== now.dev)
    throw new ExitError(`${to} was replaced right after the rename (another writer?): not verified`);
  return { sha256: hashed.sha256, identity: now };
}

/**
 * Hash the file at `from` through one fd that stays open across its rename to `to` (a stamp of the
 * result names exactly the bytes hashed), and return what it is there. `missing`: the error when
 * there is no file at `from`.
 */
export async function hashIntoPlace(
  ctx: HostContext,
  from: string,
  to: string,
  o: { missing: string; onProgress?: (done: number, total: number) => void },
): Promise<Hashed> {
  const f = await ctx.host.fs.openRead(from);
  if (!f) throw new ExitError(o.missing);
  try {
    return await renameHashed(ctx, f, await sha256Open(ctx, f, from, o.onProgress), from, to);
  } finally {
    await f.close();
  }
}

/** A hashing progress reporter that says something every 10 % (hashing is quick but not instant). */
export function hashProgress(report: (line: string) => void): (done: number, total: number) => void {
  let last = -1;
  return (done, total) => {
    const pct = total > 0 ? Math.floor((10 * done) / total) * 10 : 100;
    if (pct !== last) {
      last = pct;
      report(`Computing SHA-256: ${pct} % of ${formatBytes(total)}`);
    }
  };
}

/** Where the root filesystem is in an image file, and which filesystem it is. */
export async function imageLayout(
  ctx: HostContext,
  image: string,
): Promise<{ layout: ImageLayout; fs: FsType | undefined }> {
  const st = await ctx.host.fs.stat(image);
  if (!st) throw new ExitError(`Image ${image} not found: run \`aplspawn run getimage\` first`);
  const layout = await readImageLayout((o, n) => ctx.host.fs.readBytes(image, o, n), st.size);
  const fs = detectFilesystem(await ctx.host.fs.readBytes(image, layout.offset, SUPERBLOCK_PROBE_BYTES));
  return { layout, fs };
}

/** Whether a loop device is backed by the file with this identity, at this offset. */
export function backs(l: LoopInfo, id: Pick<FileIdentity, "ino" | "dev">, offset: number): boolean {
  return l.backIno === id.ino && l.backDev === id.dev && l.offset === offset;
}

/** The "major:minor" of a block device (for matching mounts, whose source names may differ). */
export async function blockDevNumber(ctx: HostContext, dev: string): Promise<string | undefined> {
  return (await ctx.host.fs.stat(dev))?.rdevId;
}

/** Where a block device is mounted in our namespace. */
export async function mountsOfDevice(ctx: HostContext, dev: string): Promise<MountInfo[]> {
  const num = await blockDevNumber(ctx, dev);
  return (await readMounts(ctx.host)).filter((m) => m.source === dev || (num !== undefined && m.dev === num));
}

/** Unmount everything at or below dir, deepest first; never lazily (a busy mount is an error). */
async function unmountUnder(ctx: HostContext, dir: string): Promise<void> {
  for (const m of mountsUnder(await readMounts(ctx.host), dir))
    await undoUnlessGone(
      () => ctx.host.exec("umount", ["--", m.mountPoint], { signal: ctx.signal }),
      async () => (await readMounts(ctx.host)).some((x) => x.mountPoint === m.mountPoint),
    );
}

/** Remove a temporary tree, after unmounting anything a failed debootstrap left mounted in it. */
export async function removeTree(ctx: HostContext, dir: string): Promise<void> {
  if (!(await ctx.host.fs.exists(dir))) return;
  await unmountUnder(ctx, dir);
  await ctx.host.fs.rm(dir);
}

/** Free bytes for the filesystem that holds (or will hold) `path`: its nearest existing ancestor's. */
export async function freeBytesFor(ctx: HostContext, path: string): Promise<number> {
  let p = path;
  while (p !== "/" && !(await ctx.host.fs.exists(p))) p = p.slice(0, p.lastIndexOf("/")) || "/";
  return ctx.host.fs.freeBytes(p);
}

const MAX_TEXT = 1024 * 1024;

/**
 * A small resource (a SHA256SUMS file, its signature, a simplestreams index) from an http(s) or file
 * URL: at most `max` bytes, a larger one is refused (`what` says what it then cannot be).
 */
export async function fetchSmall(
  ctx: HostContext,
  url: string,
  max = MAX_TEXT,
  what = "not a SHA256SUMS file",
): Promise<Buffer> {
  const u = new URL(url);
  if (u.protocol === "file:") {
    const p = decodeURIComponent(u.pathname);
    const st = await ctx.host.fs.stat(p);
    if (!st) throw new ExitError(`${p} not found`);
    if (st.size > max) throw new ExitError(`${p} is larger than ${formatBytes(max)}`);
    return ctx.host.fs.readBytes(p, 0, max);
  }
  const res = await ctx.host.http.request(url, { signal: ctx.signal, timeoutMs: 30_000 });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    if (res.status >= 200 && res.status < 300) {
      n += c.length;
      if (n > max) throw new ExitError(`${url} is larger than ${formatBytes(max)}: ${what}`);
      chunks.push(Buffer.from(c));
    }
  }
  if (res.status < 200 || res.status >= 300) throw new ExitError(`HTTP ${res.status} from ${url}`);
  return Buffer.concat(chunks);
}

/**
 * Check the detached signature `<checksums>.gpg` (as mkosi signs SHA256SUMS) of the checksums text
 * with gpgv against the keyring the config names: then checksums over plain http can be trusted.
 */
async function verifySignature(
  ctx: HostContext,
  checksums: string,
  data: Buffer,
  keyring: string,
): Promise<void> {
  const sig = await fetchSmall(ctx, `${checksums}.gpg`);
  const dir = `/tmp/aplspawn-sig-${randomBytes(6).toString("hex")}`;
  await ctx.host.fs.mkdir(dir, 0o700);
  try {
    await ctx.host.fs.writeFile(`${dir}/SHA256SUMS`, data, 0o600);
    await ctx.host.fs.writeFile(`${dir}/SHA256SUMS.gpg`, sig, 0o600);
    const r = await ctx.host.exec(
      "gpgv",
      ["--keyring", keyring, "--", `${dir}/SHA256SUMS.gpg`, `${dir}/SHA256SUMS`],
      { allowFail: true, readOnly: true, signal: ctx.signal },
    );
    if (r.exitCode !== 0)
      throw new ExitError(
        `The signature ${checksums}.gpg does not verify with ${keyring}: ${r.stderr.trim().split("\n").pop() ?? ""}`,
      );
  } finally {
    await ctx.host.fs.rm(dir);
  }
}

/** What an image's digest should be, and where that came from. */
export interface Expected {
  sha256: string;
  from: string;
}

/** The expected digest: image.sha256, or the image's line in image.checksums; undefined when neither is set. */
export async function expectedDigest(
  ctx: HostContext,
  p: { sha256?: string; checksums?: string; checksumsKeyring?: string; name: string },
): Promise<Expected | undefined> {
  if (p.sha256) return { sha256: p.sha256.toLowerCase(), from: "image.sha256" };
  if (!p.checksums) return undefined;
  const data = await fetchSmall(ctx, p.checksums);
  if (p.checksumsKeyring) await verifySignature(ctx, p.checksums, data, p.checksumsKeyring);
  const text = data.toString("utf8");
  const d = findChecksum(text, p.name);
  if (!d) throw new ExitError(`${p.checksums} has no line for ${p.name}`);
  return { sha256: d, from: p.checksums };
}

/** The stamp of an image, when it still describes the file. */
export async function validStamp(
  ctx: HostContext,
  stampFile: string,
  image: string,
): Promise<Stamp | undefined> {
  if (!(await ctx.host.fs.exists(stampFile))) return undefined;
  const s = parseStamp(await ctx.host.fs.readFile(stampFile));
  const id = await fileIdentity(ctx, image);
  return s && id && stampMatches(s, image, id) ? s : undefined;
}

/**
 * Record that `image` has the digest it was hashed to, for the identity it had then: only while it
 * still has that identity (any write since changes its ctime, and the stamp would lie).
 */
export async function writeStamp(
  ctx: HostContext,
  stampFile: string,
  image: string,
  hashed: Hashed,
  checksums?: string,
  source?: string,
): Promise<void> {
  const id = await fileIdentity(ctx, image);
  if (!id || !sameIdentity(id, hashed.identity))
    throw new ExitError(`${image} changed after it was hashed (another writer?): not stamped as verified`);
  await ctx.host.fs.mkdir(stampFile.slice(0, stampFile.lastIndexOf("/")), 0o755);
  await ctx.host.fs.writeFile(
    stampFile,
    `${JSON.stringify(makeStamp(image, hashed.identity, hashed.sha256, checksums, source))}\n`,
    0o644,
  );
}

/**
 * Whether the image at `path` is in place and verified: it exists, and when a digest is expected, its
 * stamp holds that digest. A checksums file that cannot be fetched trusts a stamp made against it
 * (a cached image stays usable offline).
 */
export async function imageVerified(
  ctx: HostContext,
  p: {
    path: string;
    stamp: string;
    sha256?: string;
    checksums?: string;
    checksumsKeyring?: string;
    name: string;
  },
): Promise<boolean> {
  const st = await ctx.host.fs.stat(p.path);
  if (!st?.isFile) return false;
  if (!p.sha256 && !p.checksums) return true;
  const stamp = await validStamp(ctx, p.stamp, p.path);
  if (!stamp) return false;
  let expected: Expected | undefined;
  try {
    expected = await expectedDigest(ctx, p);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    return stamp.checksums === p.checksums;
  }
  return expected?.sha256 === stamp.sha256;
}

/** The file name an image has in a SHA256SUMS file: the last part of its URL's path. */
export function imageName(url: string): string {
  return basename(decodeURIComponent(new URL(url).pathname)) || "image.img";
}
