// The pure half of image-server images (image.server + image.alias): reading a simplestreams tree as
// Incus' own client does (lxc/incus shared/simplestreams): streams/v1/index.json names the products
// files of datatype "image-downloads"; a product there has "aliases" (comma-separated), "arch" and
// "versions", each version "items" with "ftype", "path" (relative to the server's root), "sha256"
// and "size". The root of a container image is the item of ftype "squashfs" (the incus.tar.xz or
// lxd.tar.xz metadata beside it is not needed here). Both files are hostile input: their size is
// bounded by the caller, every field is checked here, and a path that is absolute, climbs out with
// "..", or is not a plain relative path is refused, not skipped.
import { createHash } from "node:crypto";

/** Where a simplestreams index lives on a server. */
export const INDEX_PATH = "streams/v1/index.json";
/** The largest index.json taken. */
export const MAX_INDEX_BYTES = 1024 * 1024;
/** The largest products file taken (images.linuxcontainers.org's is a few MiB). */
export const MAX_PRODUCTS_BYTES = 64 * 1024 * 1024;

/** Incus' name of the host's architecture (as the products' "arch" gives it), from Node's. */
export function simplestreamsArch(nodeArch: string = process.arch): string {
  const names: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "armhf",
    ia32: "i386",
    ppc64: "ppc64el",
    riscv64: "riscv64",
    s390x: "s390x",
    loong64: "loong64",
  };
  return names[nodeArch] ?? nodeArch;
}

/** Why a path from the index may not be used (undefined when it may): relative, plain, no "..". */
export function streamPathProblem(p: unknown): string | undefined {
  if (typeof p !== "string" || p === "") return "is not a path";
  if (p.length > 1024) return "is longer than 1024 characters";
  if (p.startsWith("/")) return "is absolute";
  // Printable ASCII without space, and none of \ ? # % (a query, a fragment, an escape).
  if (!/^[!-~]+$/.test(p) || /[\\?#%]/.test(p)) return "holds a character a path in the index may not";
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(p)) return "is a URL, not a path relative to the server";
  if (p.split("/").some((s) => s === "" || s === "." || s === "..")) return 'has an empty, "." or ".." part';
  return undefined;
}

/**
 * The URL of a path relative to the server's root, each part escaped but for ":" (Incus' versions
 * are named 20240101_05:24; a first part that would read as a URL scheme is refused by
 * streamPathProblem).
 */
export function streamUrl(server: string, path: string): string {
  const base = server.endsWith("/") ? server : `${server}/`;
  const escaped = path.split("/").map((s) => encodeURIComponent(s).replaceAll("%3A", ":"));
  return new URL(escaped.join("/"), base).href;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The products files (datatype image-downloads) index.json names, in its order; throws on a bad index. */
export function productsPaths(indexJson: string): string[] {
  let idx: unknown;
  try {
    idx = JSON.parse(indexJson);
  } catch {
    throw new Error(`${INDEX_PATH} is not JSON`);
  }
  const entries = isObject(idx) && isObject(idx.index) ? Object.entries(idx.index) : undefined;
  if (!entries) throw new Error(`${INDEX_PATH} has no "index" object`);
  const paths: string[] = [];
  for (const [name, e] of entries) {
    if (!isObject(e) || e.datatype !== "image-downloads") continue;
    const problem = streamPathProblem(e.path);
    if (problem)
      throw new Error(`${INDEX_PATH}: the path of "${name}" ${problem}: ${JSON.stringify(e.path)}`);
    paths.push(e.path as string);
  }
  if (!paths.length) throw new Error(`${INDEX_PATH} names no products file of datatype image-downloads`);
  return paths;
}

/** The root squashfs of one version of a product: what is downloaded, and what it must hash to. */
export interface StreamImage {
  product: string;
  version: string;
  /** Relative to the server's root. */
  path: string;
  sha256: string;
  size: number | undefined;
}

/**
 * The image an alias names for an architecture in a products file: the one product with that alias
 * (among its comma-separated "aliases") and "arch", and of its versions the newest (the greatest
 * name: Incus' versions are dated, 20240101_05:24) that has a squashfs item. undefined when no
 * product matches; throws on a products file that contradicts itself or names a bad path or digest.
 */
export function selectImage(productsJson: string, alias: string, arch: string): StreamImage | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(productsJson);
  } catch {
    throw new Error("the products file is not JSON");
  }
  if (!isObject(doc) || !isObject(doc.products))
    throw new Error('the products file has no "products" object');
  const matches = Object.entries(doc.products).filter(
    ([, p]) =>
      isObject(p) &&
      p.arch === arch &&
      typeof p.aliases === "string" &&
      p.aliases.split(",").some((a) => a.trim() === alias),
  );
  if (!matches.length) return undefined;
  if (matches.length > 1)
    throw new Error(
      `more than one product has the alias ${alias} for ${arch}: ${matches.map(([id]) => id).join(", ")}`,
    );
  const [id, product] = matches[0]! as [string, Record<string, unknown>];
  const versions = isObject(product.versions) ? Object.entries(product.versions) : [];
  versions.sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0));
  for (const [version, v] of versions) {
    const items = isObject(v) && isObject(v.items) ? Object.values(v.items) : [];
    const root = items.find((i) => isObject(i) && i.ftype === "squashfs");
    if (!isObject(root)) continue;
    const problem = streamPathProblem(root.path);
    if (problem)
      throw new Error(
        `the squashfs of ${id} version ${version}: its path ${problem}: ${JSON.stringify(root.path)}`,
      );
    if (typeof root.sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(root.sha256))
      throw new Error(`the squashfs of ${id} version ${version} has no SHA-256`);
    const size =
      typeof root.size === "number" && Number.isSafeInteger(root.size) && root.size >= 0
        ? root.size
        : undefined;
    return { product: id, version, path: root.path as string, sha256: root.sha256.toLowerCase(), size };
  }
  throw new Error(`${id} has no version with a squashfs (a container's root)`);
}

/** Why an alias cannot be one (undefined when it can): as `incus image list images:` prints them. */
export function streamAliasProblem(alias: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9._+-]*(\/[A-Za-z0-9._+-]+)*$/.test(alias) && alias.length <= 128
    ? undefined
    : "must be an image alias such as debian/12 or ubuntu/24.04 (letters, digits, . _ + - and /)";
}

/**
 * The file in the image store an image-server image is kept as: by alias and architecture, with a
 * short hash of the server, alias and architecture (the version and digest it resolved to are in
 * its stamp, as an OCI tag's manifest digest is).
 */
export function streamImageFile(server: string, alias: string, arch: string = simplestreamsArch()): string {
  const h = createHash("sha256").update(`${server}\n${alias}\n${arch}`).digest("hex").slice(0, 12);
  return `incus-${alias.replace(/[^A-Za-z0-9_.-]/g, "_")}-${arch}-${h}.squashfs`;
}

/** The stamp's record of where the image came from: server, alias and architecture, then what it resolved to. */
export const streamSourcePrefix = (server: string, alias: string, arch: string) =>
  `simplestreams:${server} ${alias} ${arch}@`;
