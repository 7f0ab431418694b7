// Reading a disk image's partition table in TypeScript: the kernel does not scan partitions on
// loop devices everywhere (host-facts), so we find the root partition ourselves and attach just it
// with `losetup --offset --sizelimit`. GPT (as mkosi writes it), MBR for older images, or a bare
// filesystem with no table at all.
import { crc32 } from "node:zlib";
import { detectFilesystem, type FsType, SUPERBLOCK_PROBE_BYTES } from "./superblock.js";

/** Reads `length` bytes at `offset` (fewer at the end of the image). */
export type ByteReader = (offset: number, length: number) => Promise<Buffer>;

/** A table that cannot be trusted, or an image with no usable root: the message says which. */
export class PartitionTableError extends Error {
  override name = "PartitionTableError";
}

/** Where the root filesystem is inside the image. */
export interface ImageLayout {
  table: "gpt" | "mbr" | "none";
  /** Byte offset and length of the root filesystem inside the image. */
  offset: number;
  size: number;
  /** 1-based partition number (0 for a bare filesystem). */
  partition: number;
  /** GPT type GUID (lower case) or MBR type byte as two hex digits. */
  type: string;
  /** GPT partition name, when there is one. */
  name?: string;
  /** Things worth telling the user (a backup GPT was used, several roots…). */
  notes: string[];
}

/** Root partition type GUIDs (Discoverable Partitions Specification), by Node's process.arch. */
const ROOT_TYPE_GUIDS: Readonly<Record<string, string>> = {
  x64: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
  arm64: "b921b045-1df0-41c3-af44-4c6f280d3fae",
  ia32: "44479540-f297-41b2-9af7-d131d5f0458a",
  arm: "69dad710-2ce4-4e3c-b16c-21a1d49abed3",
  riscv64: "72ec70a6-cf74-40e6-bd49-4bda08e8f224",
  ppc64: "c31c45e6-3f39-412e-80fb-4809c4980599",
  s390x: "5eead9a9-fe09-4a1e-a1d7-520d00531306",
  loong64: "77055800-792c-4f94-b39a-98c91b762bb6",
};

/** The Discoverable Partitions Specification's names for the architectures. */
export const ARCH_NAMES: Readonly<Record<string, string>> = {
  x64: "x86-64",
  arm64: "arm64",
  ia32: "x86",
  arm: "arm",
  riscv64: "riscv64",
  ppc64: "ppc64-le",
  s390x: "s390x",
  loong64: "loongarch64",
};

/** "Linux filesystem data": a partition of no declared role. */
export const LINUX_DATA_GUID = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/** The root partition type GUID for an architecture (Node's process.arch names). */
export function rootTypeGuid(arch: string = process.arch): string {
  const g = ROOT_TYPE_GUIDS[arch];
  if (!g) throw new PartitionTableError(`no root partition type is defined for architecture ${arch}`);
  return g;
}

const GPT_SIGNATURE = "EFI PART";
const MAX_GPT_ENTRIES = 16384;
const MAX_LOGICAL_PARTITIONS = 128;

/** Format a 16-byte on-disk GUID (first three fields little-endian). */
export function formatGuid(b: Buffer): string {
  const hex = (buf: Buffer) => buf.toString("hex");
  const le = (start: number, len: number) => hex(Buffer.from(b.subarray(start, start + len)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`;
}

/** Encode a GUID string in on-disk order (for writing test tables). */
export function guidBytes(guid: string): Buffer {
  const h = guid.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`not a GUID: ${guid}`);
  const b = Buffer.from(h, "hex");
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8, 16),
  ]);
}

/** One used GPT entry. */
interface GptEntry {
  index: number;
  type: string;
  firstLba: bigint;
  lastLba: bigint;
  name: string;
}

/** One MBR partition. */
interface MbrEntry {
  index: number;
  type: number;
  active: boolean;
  start: number;
  sectors: number;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

/**
 * Find the root filesystem in an image of `size` bytes: a GPT root partition for `arch` (or the only
 * Linux data partition), an MBR Linux partition, or a filesystem at offset 0 (no table).
 */
export async function readImageLayout(
  read: ByteReader,
  size: number,
  arch: string = process.arch,
): Promise<ImageLayout> {
  if (size < 512) throw new PartitionTableError(`the image is ${size} bytes: too small to hold anything`);
  const head = await read(0, Math.min(size, SUPERBLOCK_PROBE_BYTES));
  for (const ss of [512, 4096]) {
    if (head.length >= ss + 92 && head.toString("latin1", ss, ss + 8) === GPT_SIGNATURE)
      return readGpt(read, size, ss, arch);
  }
  const mbr = head.length >= 512 && head.readUInt16LE(510) === 0xaa55;
  const protective = mbr && [0, 1, 2, 3].some((i) => head[446 + i * 16 + 4] === 0xee);
  if (protective) return readGpt(read, size, 512, arch);
  const fs = detectFilesystem(head);
  if (fs) return { table: "none", offset: 0, size, partition: 0, type: fs, notes: [] };
  if (mbr) return readMbr(read, head, size);
  throw new PartitionTableError(
    "no partition table (GPT or MBR) and no known filesystem (squashfs, ext4, erofs, btrfs, xfs) at its start",
  );
}

// The primary header; when it is damaged, the backup at the end (as fdisk and the kernel do).
async function readGpt(read: ByteReader, size: number, ss: number, arch: string): Promise<ImageLayout> {
  const notes: string[] = [];
  let entries: GptEntry[];
  try {
    entries = await readGptAt(read, size, ss, 1n);
  } catch (primary) {
    if (!(primary instanceof PartitionTableError)) throw primary;
    const lastLba = BigInt(Math.floor(size / ss) - 1);
    try {
      entries = await readGptAt(read, size, ss, lastLba);
    } catch {
      throw new PartitionTableError(`corrupt GPT: ${primary.message} (and no valid backup GPT at the end)`);
    }
    notes.push(`the primary GPT is damaged (${primary.message}); used the backup GPT`);
  }
  const root = pickGptRoot(entries, arch, notes);
  const offset = Number(root.firstLba) * ss;
  const length = Number(root.lastLba - root.firstLba + 1n) * ss;
  return {
    table: "gpt",
    offset,
    size: length,
    partition: root.index,
    type: root.type,
    ...(root.name ? { name: root.name } : {}),
    notes,
  };
}

async function readGptAt(read: ByteReader, size: number, ss: number, lba: bigint): Promise<GptEntry[]> {
  const where = lba === 1n ? "header" : "backup header";
  const hdr = await read(Number(lba) * ss, ss);
  if (hdr.length < 92 || hdr.toString("latin1", 0, 8) !== GPT_SIGNATURE)
    throw new PartitionTableError(`no GPT signature in the ${where} at LBA ${lba}`);
  const headerSize = hdr.readUInt32LE(12);
  if (headerSize < 92 || headerSize > ss)
    throw new PartitionTableError(`${where} size ${headerSize} is impossible`);
  const stored = hdr.readUInt32LE(16);
  const copy = Buffer.from(hdr.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) throw new PartitionTableError(`${where} checksum (CRC32) does not match`);
  if (hdr.readBigUInt64LE(24) !== lba)
    throw new PartitionTableError(`${where} says it is at LBA ${hdr.readBigUInt64LE(24)}, not ${lba}`);
  const entriesLba = hdr.readBigUInt64LE(72);
  const count = hdr.readUInt32LE(80);
  const entrySize = hdr.readUInt32LE(84);
  if (count === 0 || count > MAX_GPT_ENTRIES)
    throw new PartitionTableError(`${where} claims ${count} partition entries`);
  if (entrySize < 128 || entrySize % 8 !== 0 || entrySize > 4096)
    throw new PartitionTableError(`${where} claims partition entries of ${entrySize} bytes`);
  const arrayStart = entriesLba * BigInt(ss);
  const arrayBytes = count * entrySize;
  if (entriesLba < 1n || arrayStart + BigInt(arrayBytes) > BigInt(size))
    throw new PartitionTableError(`the partition entry array (LBA ${entriesLba}) lies outside the image`);
  const array = await read(Number(arrayStart), arrayBytes);
  if (array.length < arrayBytes) throw new PartitionTableError("the partition entry array is truncated");
  if (crc32(array) !== hdr.readUInt32LE(88))
    throw new PartitionTableError("partition entry array checksum (CRC32) does not match");
  const sectors = BigInt(Math.floor(size / ss));
  const out: GptEntry[] = [];
  for (let i = 0; i < count; i++) {
    const e = array.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const firstLba = e.readBigUInt64LE(32);
    const lastLba = e.readBigUInt64LE(40);
    if (lastLba < firstLba)
      throw new PartitionTableError(
        `partition ${i + 1} ends (LBA ${lastLba}) before it starts (${firstLba})`,
      );
    if (firstLba < 1n || lastLba >= sectors)
      throw new PartitionTableError(
        `partition ${i + 1} (LBA ${firstLba}–${lastLba}) extends beyond the end of the image (${sectors} sectors): truncated download?`,
      );
    const name = e
      .subarray(56, 128)
      .toString("utf16le")
      .replace(/\0[\s\S]*$/, "");
    out.push({ index: i + 1, type: formatGuid(e.subarray(0, 16)), firstLba, lastLba, name });
  }
  return out;
}

function pickGptRoot(entries: GptEntry[], arch: string, notes: string[]): GptEntry {
  const want = rootTypeGuid(arch);
  const roots = entries.filter((e) => e.type === want);
  if (roots.length > 0) {
    if (roots.length > 1)
      notes.push(`${roots.length} root partitions for ${ARCH_NAMES[arch] ?? arch}; used the first`);
    return roots[0]!;
  }
  const foreign = entries.find((e) => Object.values(ROOT_TYPE_GUIDS).includes(e.type));
  if (foreign) {
    const a = Object.entries(ROOT_TYPE_GUIDS).find(([, g]) => g === foreign.type)?.[0] ?? "?";
    throw new PartitionTableError(
      `the image's root partition is for ${ARCH_NAMES[a] ?? a}, but this host is ${ARCH_NAMES[arch] ?? arch}`,
    );
  }
  const linux = entries.filter((e) => e.type === LINUX_DATA_GUID);
  if (linux.length === 1) return linux[0]!;
  if (linux.length > 1)
    throw new PartitionTableError(
      `no root partition for ${ARCH_NAMES[arch] ?? arch} and ${linux.length} Linux data partitions: cannot tell which is root`,
    );
  const found = entries.length ? entries.map((e) => `${e.index}: ${e.type}`).join(", ") : "none";
  throw new PartitionTableError(
    `no root partition: GPT has no partition of type ${want} (root, ${ARCH_NAMES[arch] ?? arch}) or Linux data; partitions: ${found}`,
  );
}

function mbrEntry(sector: Buffer, i: number): MbrEntry | undefined {
  const o = 446 + i * 16;
  const status = sector[o]!;
  if (status !== 0 && status !== 0x80)
    throw new PartitionTableError(`MBR entry ${i + 1} has an invalid status byte 0x${status.toString(16)}`);
  const type = sector[o + 4]!;
  const sectors = sector.readUInt32LE(o + 12);
  if (type === 0 || sectors === 0) return undefined;
  return { index: i + 1, type, active: status === 0x80, start: sector.readUInt32LE(o + 8), sectors };
}

const isExtended = (t: number) => t === 0x05 || t === 0x0f || t === 0x85;

async function readMbr(read: ByteReader, head: Buffer, size: number): Promise<ImageLayout> {
  const primary = [0, 1, 2, 3].flatMap((i) => mbrEntry(head, i) ?? []);
  const all = primary.filter((e) => !isExtended(e.type));
  const ext = primary.find((e) => isExtended(e.type));
  if (ext) {
    // Logical partitions: a chain of EBRs, each relative to the extended partition's start.
    const seen = new Set<number>();
    let ebr = ext.start;
    for (let n = 5; ; n++) {
      if (seen.has(ebr) || seen.size >= MAX_LOGICAL_PARTITIONS)
        throw new PartitionTableError("the MBR's chain of logical partitions loops");
      seen.add(ebr);
      if ((ebr + 1) * 512 > size)
        throw new PartitionTableError(`an extended boot record (sector ${ebr}) lies outside the image`);
      const sector = await read(ebr * 512, 512);
      if (sector.length < 512 || sector.readUInt16LE(510) !== 0xaa55)
        throw new PartitionTableError(`the extended boot record at sector ${ebr} has no signature`);
      const logical = mbrEntry(sector, 0);
      const next = mbrEntry(sector, 1);
      if (logical) all.push({ ...logical, index: n, start: ebr + logical.start });
      if (!next || !isExtended(next.type)) break;
      ebr = ext.start + next.start;
    }
  }
  for (const e of all)
    if ((e.start + e.sectors) * 512 > size)
      throw new PartitionTableError(
        `MBR partition ${e.index} (${mib(e.start * 512)} + ${mib(e.sectors * 512)}) extends beyond the end of the image: truncated download?`,
      );
  const linux = all.filter((e) => e.type === 0x83);
  const pick = linux.length === 1 ? linux[0] : linux.find((e) => e.active);
  if (!pick) {
    if (linux.length > 1)
      throw new PartitionTableError(
        `the MBR has ${linux.length} Linux partitions and none is marked active: cannot tell which is root`,
      );
    const found = all.length ? all.map((e) => `${e.index}: 0x${e.type.toString(16)}`).join(", ") : "none";
    throw new PartitionTableError(
      `no root partition: the MBR has no Linux partition (type 0x83); partitions: ${found}`,
    );
  }
  return {
    table: "mbr",
    offset: pick.start * 512,
    size: pick.sectors * 512,
    partition: pick.index,
    type: pick.type.toString(16).padStart(2, "0"),
    notes: [],
  };
}

/** Describe a layout in one line, e.g. "GPT partition 1 (root-x86-64) at 1.0 MiB, 120.0 MiB". */
export function describeLayout(l: ImageLayout, fs?: FsType): string {
  const what =
    l.table === "none"
      ? "a bare filesystem (no partition table)"
      : `${l.table.toUpperCase()} partition ${l.partition}${l.name ? ` (${l.name})` : ""} at ${mib(l.offset)}, ${mib(l.size)}`;
  return fs ? `${what}, ${fs}` : what;
}
