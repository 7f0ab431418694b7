// PLACEHOLDER: the spawn workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The spawn workflow. */
export const spawn: WorkflowBuilder = () => ({ name: "spawn", steps: [] });
