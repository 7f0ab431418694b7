// PLACEHOLDER: the cleanup workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The cleanup workflow. */
export const cleanup: WorkflowBuilder = () => ({ name: "cleanup", steps: [] });
