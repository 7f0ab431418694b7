// PLACEHOLDER: the down workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The down workflow. */
export const down: WorkflowBuilder = () => ({ name: "down", steps: [] });
