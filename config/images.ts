// The lab's images: the config's image and the sets' own (containers.sets[].image), one per image
// file, each got and attached once at a lower directory of its own. No zod here: cheap to import.
import { imagePath, lowerDir } from "./paths.js";
import type { Config, ImageSection } from "./schema.js";

/** One distinct image of the lab. */
export interface LabImage {
  /**
   * undefined for the config's image (its steps and lower directory keep the names of a lab with
   * one image); otherwise the name of the first set that names its file.
   */
  id: string | undefined;
  section: ImageSection;
  /** The image file. */
  path: string;
  /** Where its root is mounted read-only (paths.ts lowerDir). */
  lower: string;
  /** The sets whose containers run on it (none in a lab without sets). */
  sets: string[];
}

/**
 * The images the lab's containers run on, in the order the sets name them: the config's image for
 * a lab without sets and for every set without an image of its own. Two sets that name the same
 * file share it (config/load.ts refuses two different sections for one file).
 */
export function labImages(c: Config): LabImage[] {
  const main = imagePath(c);
  const of = (id: string | undefined, section: ImageSection): LabImage => ({
    id,
    section,
    path: id === undefined ? main : imagePath(c, section),
    lower: lowerDir(c, id),
    sets: [],
  });
  if (!c.containers.sets) return [of(undefined, c.image)];
  const byPath = new Map<string, LabImage>();
  for (const s of c.containers.sets) {
    const section = s.image ?? c.image;
    const path = imagePath(c, section);
    let img = byPath.get(path);
    if (!img) {
      img = of(path === main ? undefined : s.name, path === main ? c.image : section);
      byPath.set(path, img);
    }
    img.sets.push(s.name);
  }
  return [...byPath.values()];
}

/** The image a set's containers run on (its id, as labImages gives it). */
export const imageOfSet = (images: readonly LabImage[], set: string | undefined): LabImage | undefined =>
  set === undefined ? images.find((i) => i.id === undefined) : images.find((i) => i.sets.includes(set));

/** The image file a container of this set (undefined: no set) runs on. */
export const imageFileOf = (c: Config, set: string | undefined): string =>
  (imageOfSet(labImages(c), set) ?? labImages(c)[0])?.path ?? "";

/** A step id of an image's task: "image.loop" for the config's image, "image.loop[ID]" for a set's. */
export const imageStepId = (kind: string, img: Pick<LabImage, "id">): string =>
  img.id === undefined ? kind : `${kind}[${img.id}]`;

/** Whether an image is fetched and flattened into the store (image.oci, image.server), not a file or built. */
export const isPulled = (s: ImageSection): boolean => s.oci !== undefined || s.server !== undefined;

/** Whether an image is a file where the config names it (file://, built there when missing), not a download or pulled. */
export const isFileImage = (s: ImageSection): boolean => !isPulled(s) && new URL(s.url).protocol === "file:";

/** How a pulled image is named in messages: its reference, or server and alias. */
export const pulledName = (s: ImageSection): string =>
  s.oci ?? `${s.alias ?? ""} from ${s.server ?? ""} (image.server)`;
