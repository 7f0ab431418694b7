// Small file helpers over the Host that several tasks share.
import type { Host } from "./host.js";

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
