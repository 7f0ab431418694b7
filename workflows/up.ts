// PLACEHOLDER: the up workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The up workflow. */
export const up: WorkflowBuilder = () => ({ name: "up", steps: [] });
