// The net task kinds, for the registry in tasks/index.ts.
import type { AnyTaskDef } from "../../src/runner/task.js";

/** Every net task kind. */
export const netTasks: AnyTaskDef[] = [];
