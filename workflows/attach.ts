// Attaching each image of the lab as the read-only lower layer its containers share (composed into
// spawn/up), and undoing that from the journal (composed into stop; down undoes every image.* entry).
import { imageStepId, type LabImage, labImages } from "../config/images.js";
import type { Config } from "../config/schema.js";
import { type Step, task, undo } from "../src/runner/task.js";
import { imageLoop } from "../tasks/image/loop.js";
import { imageLower } from "../tasks/image/lower.js";

/** The steps that attach one image and mount its root read-only at its lower directory. */
export function imageAttachSteps(img: LabImage): Step[] {
  const p = {
    image: img.path,
    lowerDir: img.lower,
    ...(img.section.loopDevice ? { loopDevice: img.section.loopDevice } : {}),
  };
  return [
    task(imageLoop, imageStepId("image.loop", img), p),
    task(imageLower, imageStepId("image.lower", img), p),
  ];
}

/** Every image of the lab attached (composed into spawn). */
export const attachSteps = (c: Config): Step[] => labImages(c).flatMap(imageAttachSteps);

/** The steps that unmount the lower layer and detach the image (composed into stop). */
export const detachSteps = (): Step[] => [
  undo(
    "image.detach",
    "Unmounting the lower layer and detaching the image",
    (e) =>
      e.kind === "image.lower" ||
      e.kind === "image.loop" ||
      e.kind === "image.layer" ||
      e.kind === "lab.share",
  ),
];
