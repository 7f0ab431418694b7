// Recognising a filesystem from its superblock, so the image is mounted with the right type
// (mount's own probing needs libblkid's database; we only need the five formats images use).

/** The filesystems an image's root may hold. */
export type FsType = "squashfs" | "ext4" | "erofs" | "btrfs" | "xfs";

/** Bytes to read from the start of a filesystem for detectFilesystem (btrfs's superblock is at 64 KiB). */
export const SUPERBLOCK_PROBE_BYTES = 0x10000 + 4096;

/** The filesystem whose superblock starts `buf` (read from the start of the partition), if any. */
export function detectFilesystem(buf: Buffer): FsType | undefined {
  // squashfs: "hsqs" at 0, format version 4 (the only one Linux mounts).
  if (buf.length >= 30 && buf.toString("latin1", 0, 4) === "hsqs" && buf.readUInt16LE(28) === 4)
    return "squashfs";
  // XFS: "XFSB" at 0 (big-endian magic).
  if (buf.length >= 4 && buf.toString("latin1", 0, 4) === "XFSB") return "xfs";
  // EROFS: 0xE0F5E1E2 (little-endian) at 1024.
  if (buf.length >= 1028 && buf.readUInt32LE(1024) === 0xe0f5e1e2) return "erofs";
  // ext2/3/4: 0xEF53 at 1024 + 56; the ext4 driver mounts all three.
  if (buf.length >= 1082 && buf.readUInt16LE(1080) === 0xef53) return "ext4";
  // btrfs: "_BHRfS_M" at 64 KiB + 64.
  if (buf.length >= 0x10048 && buf.toString("latin1", 0x10040, 0x10048) === "_BHRfS_M") return "btrfs";
  return undefined;
}

/** Mount options for a read-only lower layer: never replay a journal on a read-only device. */
export function readOnlyMountOptions(fs: FsType): string {
  switch (fs) {
    case "ext4":
      return "ro,noload";
    case "xfs":
      return "ro,norecovery";
    default:
      return "ro";
  }
}
