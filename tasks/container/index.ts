// The container task kinds, for the registry in tasks/index.ts.
import type { AnyTaskDef } from "../../src/runner/task.js";

/** Every container task kind. */
export const containerTasks: AnyTaskDef[] = [];
