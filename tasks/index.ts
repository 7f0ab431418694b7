// Every task kind, so the runner can find a rollback from the journal alone.
import type { AnyTaskDef } from "../src/runner/task.js";
import { clusterTasks } from "./cluster/index.js";
import { containerTasks } from "./container/index.js";
import { imageTasks } from "./image/index.js";
import { netTasks } from "./net/index.js";
import { snapshotSave } from "./snapshot/save.js";

/** All task kinds aplspawn has. */
const allTasks: AnyTaskDef[] = [...netTasks, ...imageTasks, ...containerTasks, ...clusterTasks, snapshotSave];

/** Task kinds by kind name. */
export function taskRegistry(): Map<string, AnyTaskDef> {
  const m = new Map<string, AnyTaskDef>();
  for (const t of allTasks) {
    if (m.has(t.kind)) throw new Error(`duplicate task kind ${t.kind}`);
    m.set(t.kind, t);
  }
  return m;
}
