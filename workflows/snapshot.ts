// snapshot save, restore and delete (`aplspawn snapshot`). Save stops the containers (a stopped
// container's layer is still: what is kept is what a clean shutdown left), copies each one's layers
// into the snapshot, and starts them again. Restore is a reset onto the snapshot: each container's
// running entries and upper layer are undone, the snapshot's layers linked in under a fresh upper
// layer, and up's container steps start it; its host key stays (it is in the snapshot too), so
// known_hosts and the owner's copies stay as they are. Delete undoes a snapshot's save entries;
// `run down --purge` and `run cleanup` undo them all. Spawn's lab steps come first, as for reset.
import { imageFileOf } from "../config/images.js";
import { diskPaths, layersDir, snapshotsDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import { group, type JournalRef, task, undo } from "../src/runner/task.js";
import { containerLayers } from "../tasks/container/layers.js";
import { containerUpper } from "../tasks/container/upper.js";
import { savedIn, saveId, snapshotSave } from "../tasks/snapshot/save.js";
import { containersGroup, entries, selectedSpecs, snapshotLayersSteps } from "./lab-steps.js";
import { spawnLabSteps } from "./spawn.js";
import type { WorkflowBuilder, WorkflowOptions } from "./types.js";

/** The snapshot a workflow acts on, and its directory. */
function named(c: Config, o: WorkflowOptions): { name: string; dir: string } {
  if (!o.snapshot) throw new UsageError("a snapshot needs a name");
  // An id range is the container's own: layers owned by one mean nothing to the next.
  if (c.containers.privateUsers)
    throw new UsageError("snapshots are not made of containers with containers.privateUsers (yet)");
  return { name: o.snapshot, dir: `${snapshotsDir(c)}/${o.snapshot}` };
}

/** The entries of a container that are its running state (what stop undoes), its file system kept mounted. */
const runningOf = (names: string[]) => (e: JournalRef) =>
  entries.container(e, names) && !entries.kept(e) && !entries.disk(e);

/** Save: stop, copy, start again. */
export const snapshotSaveWorkflow: WorkflowBuilder = (c, o) => {
  const { name, dir } = named(c, o);
  const specs = selectedSpecs(c, o);
  const names = specs.map((s) => s.name);
  return {
    name: "snapshot-save",
    steps: [
      ...spawnLabSteps(c),
      undo(
        "snapshot.stop",
        `Stopping ${names.join(", ")} to save them`,
        runningOf(names),
        entries.lanes(c, o),
      ),
      group(
        "snapshot.save",
        `Saving snapshot ${name}`,
        specs.map((s) =>
          task(snapshotSave, saveId(name, s.name), {
            snapshot: name,
            name: s.name,
            ...(s.set === undefined ? {} : { set: s.set }),
            upper: diskPaths(c, s.name).upper,
            layers: layersDir(c, s.name),
            image: imageFileOf(c, s.set),
            root: snapshotsDir(c),
            dest: `${dir}/${s.name}`,
          }),
        ),
        o.concurrency ?? c.containers.concurrency,
      ),
      containersGroup(c, specs, o),
    ],
  };
};

/** Restore: a reset of the containers onto the snapshot's layers. */
export const snapshotRestoreWorkflow: WorkflowBuilder = (c, o) => {
  const { name } = named(c, o);
  const specs = selectedSpecs(c, o);
  const names = specs.map((s) => s.name);
  const layered = [containerUpper.kind, containerLayers.kind];
  return {
    name: "snapshot-restore",
    steps: [
      ...spawnLabSteps(c),
      undo(
        "snapshot.reset",
        `Stopping ${names.join(", ")} and deleting their upper layers`,
        (e) => runningOf(names)(e) || (entries.container(e, names) && layered.includes(e.kind)),
        entries.lanes(c, o),
      ),
      ...snapshotLayersSteps(c, specs, name),
      containersGroup(c, specs, o),
    ],
  };
};

/** Delete: undo the snapshot's save entries. */
export const snapshotDeleteWorkflow: WorkflowBuilder = (c, o) => {
  const { name } = named(c, o);
  return {
    name: "snapshot-delete",
    steps: [undo("snapshot.delete", `Deleting snapshot ${name}`, savedIn(name))],
  };
};
