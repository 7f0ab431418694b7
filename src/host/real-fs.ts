// The real host's files: node:fs, with the durable writes of durable.ts.
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import { appendDurable, createExclusive, openWrite, writeAtomic } from "./durable.js";
import type { FileStat, HostFs, ReadableFile } from "./host.js";

// Linux's dev_t: major in bits 8-19 and 32-63, minor in bits 0-7 and 20-31 (glibc's gnu_dev_major).
const devId = (d: bigint) =>
  `${((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)}:${(d & 0xffn) | ((d >> 12n) & ~0xffn)}`;
const seconds = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`;

function fileStat(s: import("node:fs").BigIntStats): FileStat {
  return {
    size: Number(s.size),
    isDirectory: s.isDirectory(),
    isFile: s.isFile(),
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    dev: Number(s.dev),
    ino: Number(s.ino),
    inoId: String(s.ino),
    devId: devId(s.dev),
    rdevId: devId(s.rdev),
    mtime: seconds(s.mtimeNs),
    ctime: seconds(s.ctimeNs),
  };
}

/** The host's files. */
export const realFs: HostFs = {
  readFile: (p) => fs.readFile(p, "utf8"),
  async readBytes(p, position, length) {
    const fh = await fs.open(p, "r");
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  },
  writeFile: writeAtomic,
  appendFile: (p, d) => fs.appendFile(p, d),
  appendDurable,
  createExclusive,
  async exists(p) {
    try {
      await fs.lstat(p);
      return true;
    } catch {
      return false;
    }
  },
  async stat(p) {
    try {
      return fileStat(await fs.stat(p, { bigint: true }));
    } catch {
      return undefined;
    }
  },
  async mkdir(p, mode) {
    await fs.mkdir(p, { recursive: true, mode });
  },
  readdir: (p) => fs.readdir(p),
  realpath: (p) => fs.realpath(p),
  readlink: (p) => fs.readlink(p),
  rm: (p) => fs.rm(p, { recursive: true, force: true }),
  async rmdir(p) {
    await fs.rmdir(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  },
  rename: (a, b) => fs.rename(a, b),
  chmod: (p, m) => fs.chmod(p, m),
  chown: (p, u, g) => fs.lchown(p, u, g),
  async freeBytes(p) {
    const s = await fs.statfs(p);
    return Number(s.bavail) * Number(s.bsize);
  },
  openWrite,
  openRead,
};

// O_NOFOLLOW: a link at path fails the open (ELOOP) instead of being followed; O_NONBLOCK: a FIFO
// does not hang the open (a regular file ignores it). What was opened is checked through its fd.
const READ_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

async function openRead(p: string): Promise<ReadableFile | undefined> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(p, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new Error(`${p} is a symbolic link; aplspawn does not follow it`);
    throw e;
  }
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw e;
  });
  if (!st.isFile()) {
    await fh.close();
    throw new Error(`${p} is not a regular file; aplspawn reads only regular files there`);
  }
  return {
    stat: async () => fileStat(await fh.stat({ bigint: true })),
    async read(position, length) {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    },
    close: () => fh.close(),
  };
}
