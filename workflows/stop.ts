// PLACEHOLDER: the stop workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The stop workflow. */
export const stop: WorkflowBuilder = () => ({ name: "stop", steps: [] });
