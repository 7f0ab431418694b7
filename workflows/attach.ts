// PLACEHOLDER: attaching the image as the lower layer is not built yet.
import type { Config } from "../config/schema.js";
import type { Step } from "../src/runner/task.js";

/** The steps that attach the image and mount its root read-only at lowerDir(c) (composed into spawn/up). */
export const attachSteps = (_c: Config): Step[] => [];

/** The steps that unmount the lower layer and detach the image (composed into stop/down). */
export const detachSteps = (_c: Config): Step[] => [];
