// down: undo what the journal holds: containers (concurrently, each one's entries newest first),
// then the image, then the network, then the rest (inventory, sysctls). Its undo steps read nothing
// from the config: with the config changed or deleted, it still undoes exactly what was created.
// The lab's lasting state (upper layers, host keys, the lab key) stays unless --purge, which also
// deletes the downloaded image. Last, what no journal records: the inventory `aplspawn inventory`
// wrote and the ssh masters `status` and ansible keep (found by the config's paths, ours only), and
// with --purge the console logs failed runs kept. `aplspawn test --reuse-prepare` spares the one
// snapshot it keeps (keepSnapshot) from its purge.
import { type JournalRef, undo } from "../src/runner/task.js";
import { savedIn } from "../tasks/snapshot/save.js";
import { clusterPurgeStep } from "./cluster.js";
import { purgeImageSteps } from "./getimage.js";
import { entries, inventoryGoneStep, logsGoneStep } from "./lab-steps.js";
import { purgePackagesSteps } from "./packages.js";
import type { WorkflowBuilder } from "./types.js";

/** The down workflow. */
export const down: WorkflowBuilder = (c, o) => {
  const spared = o.keepSnapshot === undefined ? () => false : savedIn(o.keepSnapshot);
  const keep = (e: JournalRef) => (!o.purge && entries.kept(e)) || spared(e);
  return {
    name: "down",
    steps: [
      // A lab across hosts: the hosts' lasting state goes first (their journals are theirs).
      ...(o.purge && c.cluster ? [clusterPurgeStep(c, o)] : []),
      undo(
        "down.containers",
        "Stopping containers",
        (e) => entries.container(e) && !keep(e),
        entries.lanes(c, o),
      ),
      undo("down.image", "Detaching the image", (e) => entries.family(e, "image") && !keep(e)),
      undo("down.network", "Taking the network down", (e) => entries.family(e, "net") && !keep(e)),
      undo(
        "down.rest",
        o.purge ? "Removing the rest (inventory, sysctls, keys)" : "Removing the rest (inventory, sysctls)",
        (e) => !keep(e),
      ),
      inventoryGoneStep(c),
      ...(o.purge ? [logsGoneStep(c)] : []),
      // A downloaded image is a cache outside the journal: --purge deletes it by the config's URL.
      ...(o.purge && !o.keepImage ? [...purgePackagesSteps(c), ...purgeImageSteps(c)] : []),
    ],
  };
};
