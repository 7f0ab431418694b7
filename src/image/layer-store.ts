// The packages layers (image.packages) in the image store: <store>/layers/<key>.squashfs, each with
// a stamp whose source names the image it was made for, its package manager and packages.
import type { Host } from "../host/host.js";
import { parseStamp, stampPath } from "./stamp.js";

/** A packages layer the store holds for an image. */
export interface StoredLayer {
  path: string;
  /** The stamp's source: "packages:<image> <manager> <packages,…>". */
  source: string;
  size: number;
}

/** The layers in `store` whose stamp says they were made for `image`. */
export async function packagesLayersOf(host: Host, store: string, image: string): Promise<StoredLayer[]> {
  const dir = `${store}/layers`;
  const names = await host.fs.readdir(dir).catch(() => [] as string[]);
  const out: StoredLayer[] = [];
  for (const n of names.filter((n) => /^[0-9a-f]{64}\.squashfs$/.test(n))) {
    const path = `${dir}/${n}`;
    const s = parseStamp(await host.fs.readFile(stampPath(store, path)).catch(() => ""));
    if (s?.source?.startsWith(`packages:${image} `))
      out.push({ path, source: s.source, size: s.identity.size });
  }
  return out;
}
