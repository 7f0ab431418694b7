// PLACEHOLDER: the getimage workflow is not built yet.
import type { WorkflowBuilder } from "./index.js";

/** The getimage workflow. */
export const getimage: WorkflowBuilder = () => ({ name: "getimage", steps: [] });
