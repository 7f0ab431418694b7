// Writing into a container's root: its confined view, and writes made only on a change.
import type { Host, Owner, RootFs } from "../host/host.js";
import { idShiftOf } from "./id-ranges.js";

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
