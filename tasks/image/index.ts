// The image task kinds, for the registry in tasks/index.ts.
import type { AnyTaskDef } from "../../src/runner/task.js";

/** Every image task kind. */
export const imageTasks: AnyTaskDef[] = [];
