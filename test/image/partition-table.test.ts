// The partition-table reader on tables built byte by byte: valid GPT and MBR, and the ways a table
// can be broken (signature, checksums, sizes, truncation, loops), each with a message that says so.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32 } from "node:zlib";
import {
  formatGuid,
  guidBytes,
  LINUX_DATA_GUID,
  PartitionTableError,
  readImageLayout,
  rootTypeGuid,
} from "../../src/image/partition-table.js";

const ROOT_X64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
const ROOT_ARM64 = "b921b045-1df0-41c3-af44-4c6f280d3fae";
const ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec3b8";

interface Part {
  type: string;
  first: number;
  last: number;
  name?: string;
}

/** A GPT disk of `sectors` 512-byte sectors: protective MBR, primary and backup tables. */
function gptDisk(parts: Part[], sectors = 4096, ss = 512): Buffer {
  const disk = Buffer.alloc(sectors * ss);
  // protective MBR
  disk[446 + 4] = 0xee;
  disk.writeUInt32LE(1, 446 + 8);
  disk.writeUInt32LE(Math.min(0xffffffff, sectors - 1), 446 + 12);
  disk.writeUInt16LE(0xaa55, 510);
  const count = 128;
  const array = Buffer.alloc(count * 128);
  parts.forEach((p, i) => {
    const e = array.subarray(i * 128, (i + 1) * 128);
    guidBytes(p.type).copy(e, 0);
    guidBytes("11111111-2222-3333-4444-555555555555").copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.first), 32);
    e.writeBigUInt64LE(BigInt(p.last), 40);
    Buffer.from(p.name ?? "", "utf16le").copy(e, 56);
  });
  const arraySectors = Math.ceil(array.length / ss);
  const header = (my: number, alt: number, entriesLba: number) => {
    const h = Buffer.alloc(ss);
    h.write("EFI PART", 0, "latin1");
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alt), 32);
    h.writeBigUInt64LE(34n, 40);
    h.writeBigUInt64LE(BigInt(sectors - 34), 48);
    guidBytes("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(count, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(crc32(array), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  header(1, sectors - 1, 2).copy(disk, ss);
  array.copy(disk, 2 * ss);
  const backupArrayLba = sectors - 1 - arraySectors;
  array.copy(disk, backupArrayLba * ss);
  header(sectors - 1, 1, backupArrayLba).copy(disk, (sectors - 1) * ss);
  return disk;
}

/** Recompute the primary header's CRC after a test edits it. */
function fixHeaderCrc(disk: Buffer, lba = 1): void {
  const h = disk.subarray(lba * 512, lba * 512 + 92);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(crc32(h), 16);
}

/** Corrupt one byte. */
const flip = (b: Buffer, at: number, mask: number) => b.writeUInt8(b.readUInt8(at) ^ mask, at);

const reader = (b: Buffer) => async (o: number, n: number) => b.subarray(o, o + n);
const layout = (b: Buffer, arch = "x64") => readImageLayout(reader(b), b.length, arch);

async function rejects(b: Buffer, pattern: RegExp, arch = "x64") {
  await assert.rejects(layout(b, arch), (e: unknown) => {
    assert.ok(e instanceof PartitionTableError, `a PartitionTableError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("GUIDs round-trip through their mixed-endian on-disk form", () => {
  assert.equal(formatGuid(guidBytes(ROOT_X64)), ROOT_X64);
  // The first field is little-endian on disk.
  assert.equal(guidBytes(ROOT_X64).subarray(0, 4).toString("hex"), "e3bc684f");
  assert.equal(rootTypeGuid("x64"), ROOT_X64);
  assert.throws(() => rootTypeGuid("mips"), PartitionTableError);
});

test("GPT: finds the root partition for the architecture among others", async () => {
  const d = gptDisk([
    { type: ESP, first: 2048, last: 2048 + 1023, name: "esp" },
    { type: ROOT_ARM64, first: 3072, last: 3199, name: "root-arm64" },
    { type: ROOT_X64, first: 3200, last: 4000, name: "root-x86-64" },
  ]);
  const l = await layout(d);
  assert.equal(l.table, "gpt");
  assert.equal(l.partition, 3);
  assert.equal(l.offset, 3200 * 512);
  assert.equal(l.size, (4000 - 3200 + 1) * 512);
  assert.equal(l.name, "root-x86-64");
  assert.equal(l.type, ROOT_X64);
  const arm = await layout(d, "arm64");
  assert.equal(arm.partition, 2);
});

test("GPT: the only Linux data partition is the root when no root type is there", async () => {
  const l = await layout(gptDisk([{ type: LINUX_DATA_GUID, first: 2048, last: 3000 }]));
  assert.equal(l.partition, 1);
  assert.equal(l.offset, 2048 * 512);
});

test("GPT: no root partition, several Linux partitions, or another architecture's root are errors", async () => {
  await rejects(gptDisk([{ type: ESP, first: 2048, last: 3000 }]), /no root partition.*1: c12a7328/);
  await rejects(gptDisk([]), /no root partition.*partitions: none/);
  await rejects(
    gptDisk([
      { type: LINUX_DATA_GUID, first: 2048, last: 2500 },
      { type: LINUX_DATA_GUID, first: 2501, last: 3000 },
    ]),
    /2 Linux data partitions: cannot tell which is root/,
  );
  await rejects(
    gptDisk([{ type: ROOT_ARM64, first: 2048, last: 3000 }]),
    /root partition is for arm64.*x86-64/,
  );
});

test("GPT: two root partitions use the first and say so", async () => {
  const l = await layout(
    gptDisk([
      { type: ROOT_X64, first: 2048, last: 2500 },
      { type: ROOT_X64, first: 2501, last: 3000 },
    ]),
  );
  assert.equal(l.partition, 1);
  assert.match(l.notes.join(), /2 root partitions/);
});

test("GPT: a damaged primary header falls back to the backup, and says so", async () => {
  const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 3000 }]);
  flip(d, 512 + 60, 0xff); // inside the disk GUID: the header CRC no longer matches
  const l = await layout(d);
  assert.equal(l.offset, 2048 * 512);
  assert.match(l.notes.join(), /primary GPT is damaged \(header checksum/);
});

test("GPT: both headers damaged is a corrupt table", async () => {
  const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 3000 }]);
  flip(d, 512 + 60, 0xff);
  flip(d, d.length - 512 + 60, 0xff);
  await rejects(d, /corrupt GPT: header checksum \(CRC32\) does not match.*no valid backup/);
});

test("GPT: a damaged entry array is caught by its checksum", async () => {
  const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 3000 }]);
  flip(d, 2 * 512 + 33, 0x01); // the first entry's start LBA, in both copies
  const backupArray = d.length - 512 - 32 * 512;
  flip(d, backupArray + 33, 0x01);
  await rejects(d, /entry array checksum/);
});

test("GPT: impossible header fields are rejected, not trusted", async () => {
  const cases: [string, (h: Buffer) => void, RegExp][] = [
    ["header size", (h) => h.writeUInt32LE(8, 12), /size 8 is impossible/],
    ["entry count", (h) => h.writeUInt32LE(0, 80), /claims 0 partition entries/],
    ["huge entry count", (h) => h.writeUInt32LE(1_000_000, 80), /claims 1000000 partition entries/],
    ["entry size", (h) => h.writeUInt32LE(100, 84), /entries of 100 bytes/],
    ["array outside", (h) => h.writeBigUInt64LE(1_000_000n, 72), /lies outside the image/],
    ["own LBA", (h) => h.writeBigUInt64LE(7n, 24), /says it is at LBA 7/],
  ];
  for (const [what, edit, pattern] of cases) {
    const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 3000 }]);
    // Break both copies the same way so the backup cannot save it.
    for (const lba of [1, d.length / 512 - 1]) {
      edit(d.subarray(lba * 512, lba * 512 + 512));
      fixHeaderCrc(d, lba);
    }
    await assert.rejects(layout(d), (e: Error) => {
      assert.match(e.message, pattern, what);
      return true;
    });
  }
});

test("GPT: partitions past the end (a truncated download) and backwards partitions are errors", async () => {
  const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 4000 }]);
  await rejects(d.subarray(0, 3000 * 512), /extends beyond the end of the image.*truncated download/);
  await rejects(gptDisk([{ type: ROOT_X64, first: 3000, last: 2048 }]), /ends \(LBA 2048\) before it starts/);
});

test("GPT: a protective MBR without any GPT header is a corrupt table", async () => {
  const d = gptDisk([{ type: ROOT_X64, first: 2048, last: 3000 }]);
  d.fill(0, 512, 1024);
  d.fill(0, d.length - 512);
  await rejects(d, /corrupt GPT: no GPT signature/);
});

test("GPT with 4096-byte sectors is read at LBA 1 = byte 4096", async () => {
  const src = gptDisk([{ type: ROOT_X64, first: 256, last: 300 }], 512, 4096);
  const l = await layout(src);
  assert.equal(l.offset, 256 * 4096);
  assert.equal(l.size, 45 * 4096);
});

/** An MBR disk with up to four primary entries. */
function mbrDisk(
  entries: { type: number; start: number; sectors: number; active?: boolean }[],
  sectors = 8192,
) {
  const d = Buffer.alloc(sectors * 512);
  entries.forEach((e, i) => {
    const o = 446 + i * 16;
    d[o] = e.active ? 0x80 : 0;
    d[o + 4] = e.type;
    d.writeUInt32LE(e.start, o + 8);
    d.writeUInt32LE(e.sectors, o + 12);
  });
  d.writeUInt16LE(0xaa55, 510);
  return d;
}

test("MBR: the Linux partition, or the active one among several", async () => {
  const l = await layout(
    mbrDisk([
      { type: 0x0c, start: 2048, sectors: 1024 },
      { type: 0x83, start: 4096, sectors: 2048 },
    ]),
  );
  assert.deepEqual(
    [l.table, l.partition, l.offset, l.size, l.type],
    ["mbr", 2, 4096 * 512, 2048 * 512, "83"],
  );
  const two = await layout(
    mbrDisk([
      { type: 0x83, start: 2048, sectors: 1024 },
      { type: 0x83, start: 4096, sectors: 1024, active: true },
    ]),
  );
  assert.equal(two.partition, 2);
  await rejects(
    mbrDisk([
      { type: 0x83, start: 2048, sectors: 1024 },
      { type: 0x83, start: 4096, sectors: 1024 },
    ]),
    /2 Linux partitions and none is marked active/,
  );
  await rejects(mbrDisk([{ type: 0x0c, start: 2048, sectors: 1024 }]), /no Linux partition.*1: 0xc/);
  await rejects(mbrDisk([{ type: 0x83, start: 2048, sectors: 100000 }]), /extends beyond the end/);
});

test("MBR: logical partitions in an extended partition, and a looping chain", async () => {
  const d = mbrDisk([{ type: 0x05, start: 2048, sectors: 6000 }]);
  // First EBR at 2048: a FAT logical partition, then a link to the next EBR at +2000.
  const ebr = (at: number, type: number, rel: number, n: number, next?: number) => {
    const o = at * 512;
    d[o + 446 + 4] = type;
    d.writeUInt32LE(rel, o + 446 + 8);
    d.writeUInt32LE(n, o + 446 + 12);
    if (next !== undefined) {
      d[o + 462 + 4] = 0x05;
      d.writeUInt32LE(next, o + 462 + 8);
      d.writeUInt32LE(100, o + 462 + 12);
    }
    d.writeUInt16LE(0xaa55, o + 510);
  };
  ebr(2048, 0x0c, 63, 500, 2000);
  ebr(4048, 0x83, 63, 1000);
  const l = await layout(d);
  assert.equal(l.partition, 6);
  assert.equal(l.offset, (4048 + 63) * 512);
  // The second EBR points back at the first: a loop.
  d[4048 * 512 + 462 + 4] = 0x05;
  d.writeUInt32LE(0, 4048 * 512 + 462 + 8);
  d.writeUInt32LE(100, 4048 * 512 + 462 + 12);
  await rejects(d, /chain of logical partitions loops/);
});

test("MBR: a bad status byte means this is not an MBR", async () => {
  const d = mbrDisk([{ type: 0x83, start: 2048, sectors: 1024 }]);
  d[446] = 0x12;
  await rejects(d, /invalid status byte 0x12/);
});

test("bare filesystems and garbage", async () => {
  const sq = Buffer.alloc(8192);
  sq.write("hsqs", 0, "latin1");
  sq.writeUInt16LE(4, 28);
  const l = await layout(sq);
  assert.deepEqual([l.table, l.offset, l.size, l.partition, l.type], ["none", 0, 8192, 0, "squashfs"]);
  await rejects(Buffer.alloc(8192, 0x5a), /no partition table \(GPT or MBR\) and no known filesystem/);
  await rejects(Buffer.alloc(100), /too small/);
});
