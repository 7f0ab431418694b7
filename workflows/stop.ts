// stop (the original operation): stop the containers and undo their mounts from the journal, then
// detach the image, then let go of the lab's hold on the inotify limit and its claim on the
// container names (spawn's), once no container of the lab is left running. With --only, just those containers, and the image stays attached for
// the rest; the hold goes only when they were the last ones. Upper layers and host keys stay (they
// are the containers' state).
import { undo } from "../src/runner/task.js";
import { detachSteps } from "./attach.js";
import { entries, selectedSpecs } from "./lab-steps.js";
import type { WorkflowBuilder } from "./types.js";

/** The stop workflow. */
export const stop: WorkflowBuilder = (c, o) => {
  const names = o.only ? selectedSpecs(c, o).map((s) => s.name) : undefined;
  return {
    name: "stop",
    steps: [
      undo(
        "stop.containers",
        names ? `Stopping containers ${names.join(", ")}` : "Stopping containers",
        (e) => entries.container(e, names) && !entries.kept(e),
        entries.lanes(c, o),
      ),
      ...(names ? [] : detachSteps()),
      undo(
        "stop.inotify",
        "Letting go of fs.inotify.max_user_instances and the container names once no container of the lab runs",
        entries.containersHolds,
      ),
    ],
  };
};
