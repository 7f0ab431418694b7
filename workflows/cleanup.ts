// cleanup (the original operation): empty the lab's working directories (upper layers, host keys,
// the generated lab key), only when nothing of the lab runs. The image cache stays (down --purge).
import { task, undo } from "../src/runner/task.js";
import { labIdle } from "../tasks/container/idle.js";
import { entries, labPaths } from "./containers.js";
import type { WorkflowBuilder } from "./index.js";

/** The cleanup workflow. */
export const cleanup: WorkflowBuilder = (c) => ({
  name: "cleanup",
  steps: [
    task(labIdle, "lab.idle", { ...labPaths(c), prefix: c.containers.prefix }),
    undo(
      "cleanup.state",
      "Removing working directories' content",
      (e) => entries.kept(e.kind),
      entries.lanes(c, {}),
    ),
  ],
});
