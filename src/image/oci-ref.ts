// The pure half of OCI images (image.oci): what a reference may look like, and the file in the image
// store its flattened root (a squashfs) is cached as. A reference pinned by digest is cached under
// that manifest digest; a tag is cached under the reference, and its stamp records the manifest
// digest it resolved to (as `docker run` does, a tag is pulled when missing, not on every run).
import { createHash } from "node:crypto";

// [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST], as the distribution spec names them (lower case
// path components; a tag of up to 128 word characters, dots and dashes).
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const HOST =
  "(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?|\\[[0-9a-fA-F:]+\\](?::[0-9]{1,5})?)";
const REF = new RegExp(
  `^(?:(${HOST})/)?(${COMPONENT}(?:/${COMPONENT})*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$`,
);

/** A parsed OCI reference. */
export interface OciRef {
  /** The registry host as written (undefined: Docker Hub, as docker and skopeo take it). */
  registry: string | undefined;
  name: string;
  tag: string | undefined;
  digest: string | undefined;
}

/** Parse a reference, or undefined when it is not one. */
export function parseOciRef(ref: string): OciRef | undefined {
  const m = REF.exec(ref);
  if (!m || ref.length > 512) return undefined;
  let registry = m[1];
  let name = m[2]!;
  // "foo/bar" with no dot, colon or localhost in the first part: a Docker Hub path, not a host.
  if (registry !== undefined && !/[.:[]/.test(registry) && registry !== "localhost") {
    if (!new RegExp(`^${COMPONENT}$`).test(registry)) return undefined;
    name = `${registry}/${name}`;
    registry = undefined;
  }
  return { registry, name, tag: m[3], digest: m[4] };
}

/** Why a string is not an OCI reference aplspawn takes (undefined when it is one). */
export function ociRefProblem(ref: string): string | undefined {
  return parseOciRef(ref)
    ? undefined
    : "must be an OCI image reference: [REGISTRY[:PORT]/]NAME[:TAG] or NAME@sha256:DIGEST (lower-case name)";
}

/**
 * The file name of an OCI image's flattened root in the image store: by manifest digest when the
 * reference pins one, else by the reference (its last name component and tag, and a short hash).
 */
export function ociImageFile(ref: string): string {
  const r = parseOciRef(ref);
  if (r?.digest) return `oci-${r.digest.replace(":", "-")}.squashfs`;
  const last = (r?.name ?? "image").split("/").pop()!;
  const tag = (r?.tag ?? "latest").replace(/[^A-Za-z0-9_.-]/g, "_");
  const h = createHash("sha256").update(ref).digest("hex").slice(0, 12);
  return `oci-${last}-${tag}-${h}.squashfs`;
}

/** What skopeo is given as the source: the docker transport (the registry API). */
export const ociSource = (ref: string) => `docker://${ref}`;

/** The digest of the one manifest an OCI layout's index.json names (what skopeo copied). */
export function layoutManifestDigest(indexJson: string): string | undefined {
  try {
    const idx = JSON.parse(indexJson) as { manifests?: { digest?: unknown }[] };
    const ms = idx.manifests ?? [];
    const d = ms.length === 1 ? ms[0]?.digest : undefined;
    return typeof d === "string" && /^sha256:[0-9a-f]{64}$/.test(d) ? d : undefined;
  } catch {
    return undefined;
  }
}
