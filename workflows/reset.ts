// reset: the containers --only names back to the image's clean state, the rest of the lab untouched.
// Each one's journaled steps are undone, its lasting state too (upper layer, host key and its pin in
// known_hosts, its user id range), as `down --purge` undoes a container; then up's container steps
// make it again: a fresh upper layer, a new host key pinned, started and checked over ssh. A named
// container that was not up is brought up fresh. Spawn's lab steps come first (the network must be
// up), so a host that cannot run the lab fails before anything is undone.
import { containerSpecs } from "../config/containers.js";
import { UsageError } from "../src/errors.js";
import type { Owner } from "../src/lab/owner.js";
import { undo } from "../src/runner/task.js";
import { containersGroup, entries, ownerFilesStep, selectedSpecs } from "./lab-steps.js";
import { spawnLabSteps } from "./spawn.js";
import type { WorkflowBuilder } from "./types.js";

/** The reset workflow. */
export const reset: WorkflowBuilder = (c, o) => {
  // Every container's state is lost by a reset: which ones is never a default.
  if (!o.only?.length)
    throw new UsageError(
      `reset needs --only NAME[,…]: the containers to reset (containers: ${containerSpecs(c)
        .map((s) => s.name)
        .join(", ")}); name them all to reset the whole lab`,
    );
  const specs = selectedSpecs(c, o);
  const names = specs.map((s) => s.name);
  return {
    name: "reset",
    steps: [
      ...spawnLabSteps(c, o.owner),
      undo(
        "reset.containers",
        `Stopping ${names.join(", ")} and deleting their state (upper layer, host key)`,
        (e) => entries.container(e, names),
        entries.lanes(c, o),
      ),
      containersGroup(c, specs, o),
      // New host keys: the owner's copy of known_hosts follows.
      ...(o.owner || o.ansibleUser ? [ownerFilesStep(c, (o.owner ?? o.ansibleUser) as Owner)] : []),
    ],
  };
};
