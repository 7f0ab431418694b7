// cleanup (the original operation), only when nothing of the lab runs: remove what is left of the
// lab but its network (netdown's) and its image (stop detaches it; the image cache stays, down
// --purge deletes a downloaded one): the working directories' content (upper layers, host keys,
// the generated lab key), the inventory and the lab's ssh masters, the console logs failed runs
// kept, any hold the lab still has, and the packages layers made for its images (image.packages:
// a cache the next up makes again).
import { namePrefixes } from "../config/containers.js";
import { task, undo } from "../src/runner/task.js";
import { labIdle } from "../tasks/container/idle.js";
import { entries, inventoryGoneStep, labPaths, logsGoneStep } from "./lab-steps.js";
import { purgePackagesSteps } from "./packages.js";
import type { WorkflowBuilder } from "./types.js";

/** The cleanup workflow. */
export const cleanup: WorkflowBuilder = (c) => ({
  name: "cleanup",
  steps: [
    task(labIdle, "lab.idle", { ...labPaths(c), prefixes: namePrefixes(c) }),
    undo(
      "cleanup.state",
      "Removing working directories' content, the inventory and the lab's holds",
      entries.lab,
      entries.lanes(c, {}),
    ),
    inventoryGoneStep(c),
    logsGoneStep(c),
    ...purgePackagesSteps(c),
  ],
});
