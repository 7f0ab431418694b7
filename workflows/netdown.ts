// PLACEHOLDER: the netdown workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The netdown workflow. */
export const netdown: WorkflowBuilder = () => ({ name: "netdown", steps: [] });
