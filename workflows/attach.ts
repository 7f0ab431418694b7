// Attaching the image as the containers' shared, read-only lower layer (composed into spawn/up),
// and undoing that from the journal (composed into stop; down undoes every image.* entry).
import { imagePath, lowerDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { type Step, task, undo } from "../src/runner/task.js";
import { imageLoop } from "../tasks/image/loop.js";
import { imageLower } from "../tasks/image/lower.js";

/** The steps that attach the image and mount its root read-only at lowerDir(c) (composed into spawn/up). */
export const attachSteps = (c: Config): Step[] => {
  const p = {
    image: imagePath(c),
    lowerDir: lowerDir(c),
    ...(c.image.loopDevice ? { loopDevice: c.image.loopDevice } : {}),
  };
  return [task(imageLoop, "image.loop", p), task(imageLower, "image.lower", p)];
};

/** The steps that unmount the lower layer and detach the image (composed into stop). */
export const detachSteps = (): Step[] => [
  undo(
    "image.detach",
    "Unmounting the lower layer and detaching the image",
    (e) => e.kind === "image.lower" || e.kind === "image.loop",
  ),
];
