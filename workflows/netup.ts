// PLACEHOLDER: the netup workflow is not built yet.
import type { Config } from "../config/schema.js";
import type { Step } from "../src/runner/task.js";
import type { WorkflowBuilder } from "./index.js";

/** The steps that bring the network up (also composed into `up`). */
export const netupSteps = (_c: Config): Step[] => [];

/** The netup workflow. */
export const netup: WorkflowBuilder = (c) => ({ name: "netup", steps: netupSteps(c) });
