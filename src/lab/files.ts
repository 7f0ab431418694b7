// Small file helpers over the Host that several container tasks share.
import type { Host, Owner, RootFs } from "../host/host.js";
import { idShiftOf } from "./id-ranges.js";

/** A file's text, or `fallback` when it cannot be read. */
export async function readOr(host: Host, path: string, fallback = ""): Promise<string> {
  try {
    return await host.fs.readFile(path);
  } catch {
    return fallback;
  }
}

/**
 * Remove a directory only when it is empty (never a tree someone else put there): rmdir itself
 * decides, so an entry added or a directory removed in the meantime changes nothing of ours.
 */
export async function rmdirIfEmpty(host: Host, path: string): Promise<void> {
  const st = await host.fs.stat(path);
  if (!st?.isDirectory) return;
  await host.fs.rmdir(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
  });
}

/**
 * A container's root, confined (src/host/root-fs.ts): everything in it is the container's to forge.
 * In a user namespace (containers.privateUsers), what is written there is owned by the container's ids.
 */
export async function containerRoot(host: Host, merged: string, name: string): Promise<RootFs> {
  return host.root(merged, `container ${name}`, await idShiftOf(host, merged));
}

/** Whether a file in a root is a regular file holding exactly `data` (a link there does not: it is replaced). */
export async function rootHolds(r: RootFs, path: string, data: string): Promise<boolean> {
  if ((await r.kind(path)) === "link") return false;
  return (await r.readFile(path)) === data;
}

/** Write a file in a root only when it does not hold `data` yet; true when it wrote. */
export async function rootWriteIfChanged(
  r: RootFs,
  path: string,
  data: string,
  o: Owner & { mode: number },
): Promise<boolean> {
  if (await rootHolds(r, path, data)) return false;
  await r.writeFile(path, data, o);
  return true;
}
