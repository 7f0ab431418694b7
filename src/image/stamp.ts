// A "verified" stamp: the digest an image file had when it was last hashed, with the file's identity
// (size, inode, mtime, ctime), so a later run trusts it without re-hashing gigabytes. ctime cannot be
// set back by touch, so any write to the file invalidates the stamp.
import { createHash } from "node:crypto";
import { basename } from "node:path";

/** A file's identity (src/host FileStat's size, inode, device and times): a stamp holds while it is unchanged. */
export interface FileIdentity {
  size: number;
  ino: string;
  dev: string;
  mtime: string;
  ctime: string;
}

/** What a stamp file holds. */
export interface Stamp {
  format: "aplspawn-image-stamp";
  version: 1;
  path: string;
  identity: FileIdentity;
  sha256: string;
  /** The SHA256SUMS URL the digest was checked against, if any. */
  checksums?: string;
  /** What the file was made from, e.g. an OCI image's reference and manifest digest. */
  source?: string;
}

/** Where the stamp of an image lives: in the image store, named for the image's path. */
export function stampPath(store: string, image: string): string {
  const h = createHash("sha256").update(image).digest("hex").slice(0, 12);
  return `${store}/.stamps/${basename(image)}-${h}.json`;
}

/** Build a stamp. */
export function makeStamp(
  path: string,
  identity: FileIdentity,
  sha256: string,
  checksums?: string,
  source?: string,
): Stamp {
  return {
    format: "aplspawn-image-stamp",
    version: 1,
    path,
    identity,
    sha256,
    ...(checksums ? { checksums } : {}),
    ...(source ? { source } : {}),
  };
}

/** Parse a stamp file's text; undefined when it is not one. */
export function parseStamp(text: string): Stamp | undefined {
  try {
    const s = JSON.parse(text) as Partial<Stamp>;
    if (s.format !== "aplspawn-image-stamp" || s.version !== 1 || typeof s.sha256 !== "string")
      return undefined;
    if (!s.identity || typeof s.path !== "string") return undefined;
    return s as Stamp;
  } catch {
    return undefined;
  }
}

/** Whether a stamp still describes the file as it is now. */
export function stampMatches(s: Stamp, path: string, now: FileIdentity): boolean {
  const a = s.identity;
  return (
    s.path === path &&
    a.size === now.size &&
    a.ino === now.ino &&
    a.dev === now.dev &&
    a.mtime === now.mtime &&
    a.ctime === now.ctime
  );
}
