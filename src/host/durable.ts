// Writes that survive a crash on the real host: a whole file replaced at once, a record appended
// whole or not at all, a file created only if its name is free and never seen empty, and a long
// file written in batches and flushed as it grows. Each is on disk (fsync, and the directory's when
// a name changes) before it returns.
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { WritableFile } from "./host.js";

/** openWrite: bytes gathered before one writev, and written before a background fdatasync. */
const WRITE_BATCH = 4 * 1048576;
const SYNC_EVERY = 64 * 1048576;

// A new file of ours at a fresh name beside path (O_EXCL: never a file or a link found there,
// O_NOFOLLOW: not a dangling link either), its mode set through the descriptor (not by name, where
// something else may be by then; and exact, whatever the umask), then renamed over path.
const CREATE_NEW = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** Replace path's content at once: readers see the old file or the new one, never a part. */
export async function writeAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  let tmp = "";
  let fh: fs.FileHandle | undefined;
  for (let tries = 1; !fh; tries++) {
    tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString("hex")}.tmp`);
    fh = await fs.open(tmp, CREATE_NEW, 0o600).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EEXIST" && tries < 5) return undefined;
      throw e;
    });
  }
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await fs.rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

// A name made or changed in a directory is durable once the directory itself is synced.
async function syncDir(path: string): Promise<void> {
  const dir = await fs.open(path, fsConstants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Append a record whole or not at all, on disk when this returns (HostFs.appendDurable). */
export async function appendDurable(p: string, data: string, mode = 0o600): Promise<void> {
  const fh = await fs.open(p, "a", mode);
  let created = false;
  try {
    const start = (await fh.stat()).size;
    created = start === 0;
    const buf = Buffer.from(data);
    try {
      // A write may be short (a file size limit, a full disk): go on until all of it is written,
      // and on an error cut the file back to where it was, so no partial record stays behind.
      for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      await fh.datasync();
    } catch (e) {
      await fh.truncate(start).catch(() => undefined);
      await fh.datasync().catch(() => undefined);
      throw e;
    }
  } finally {
    await fh.close();
  }
  if (created) await syncDir(dirname(p));
}

/** Create path with data unless the name is taken; false when it is (HostFs.createExclusive). */
export async function createExclusive(p: string, data: string, mode = 0o600): Promise<boolean> {
  // Written in full to a temp file first, then linked into place (link fails if the name exists):
  // no one ever sees the file empty. An O_EXCL create followed by a write had that window, and a
  // lock read empty in it was taken for a dead owner's and taken over.
  // The temp file names its writer: one whose writer is gone (killed midway) can be swept.
  const tmp = join(dirname(p), `.${basename(p)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  const fh = await fs.open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.link(tmp, p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** A file written in batches and flushed as it grows; close() returns once all of it is on disk. */
export async function openWrite(p: string, append: boolean): Promise<WritableFile> {
  const fh = await fs.open(p, append ? "a" : "w", 0o600);
  // Chunks are gathered and written with one writev per few MiB (a download's chunks are 64 KiB:
  // one write each cost a fifth of the transfer), and written data is flushed to disk in the
  // background as the file grows, so close()'s fsync does not wait for all of it at the end.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let unsynced = 0;
  let syncing: Promise<void> = Promise.resolve();
  let syncError: unknown;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const batch = pending;
    unsynced += pendingBytes;
    pending = [];
    pendingBytes = 0;
    await fh.writev(batch);
    if (unsynced >= SYNC_EVERY) {
      unsynced = 0;
      syncing = syncing
        .then(() => fh.datasync())
        .catch((e: unknown) => {
          syncError ??= e;
        });
    }
  };
  return {
    async write(chunk) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BATCH) await flush();
    },
    async close() {
      try {
        await flush();
        await syncing;
        if (syncError) throw syncError;
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
  };
}
