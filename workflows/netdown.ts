// PLACEHOLDER: the netdown workflow is not built yet.
import type { Config } from "../config/schema.js";
import type { Step } from "../src/runner/task.js";
import type { WorkflowBuilder } from "./index.js";

/** The steps that take the network down (also composed into `down`). */
export const netdownSteps = (_c: Config): Step[] => [];

/** The netdown workflow. */
export const netdown: WorkflowBuilder = (c) => ({ name: "netdown", steps: netdownSteps(c) });
