// PLACEHOLDER: the getimage workflow is not built yet.
import type { Config } from "../config/schema.js";
import type { Step } from "../src/runner/task.js";
import type { WorkflowBuilder } from "./index.js";

/** The steps that make the image available and verified (download or build; also composed into `up`). */
export const getimageSteps = (_c: Config): Step[] => [];

/** The getimage workflow. */
export const getimage: WorkflowBuilder = (c) => ({ name: "getimage", steps: getimageSteps(c) });
