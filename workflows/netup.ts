// PLACEHOLDER: the netup workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The netup workflow. */
export const netup: WorkflowBuilder = () => ({ name: "netup", steps: [] });
