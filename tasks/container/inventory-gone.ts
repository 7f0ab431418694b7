// What of the lab's inventory no journal entry records: the file `aplspawn inventory` writes, and
// the ssh masters that Ansible (through that inventory) and `status` keep in the lab's directory of
// masters under /run. `run up` journals its inventory and `run down` removes it; after the original
// operations (`inventory`, `status`, an ansible run) this is how `cleanup` (and `run down`) removes
// them. Nothing to undo: the file is written again by `inventory`, the masters by the next login.
import { readOr } from "../../src/host/files.js";
import { INVENTORY_MARK } from "../../src/lab/inventory.js";
import { defineTask } from "../../src/runner/task.js";
import { removeInventory } from "./inventory.js";

/** Parameters. */
export interface InventoryGoneParams {
  /** The config's inventory file (absolute). */
  path: string;
  /** The lab's directory of ssh masters (src/lab/inventory.ts controlPathDir). */
  controlPathDir: string;
}

/** An inventory aplspawn wrote for this lab: it names the lab's directory of ssh masters. */
const ours = (p: InventoryGoneParams) => (text: string) =>
  text.startsWith(INVENTORY_MARK) && text.includes(p.controlPathDir);

/** Removes the lab's inventory file and closes its ssh masters (their directory goes too). */
export const labInventoryGone = defineTask<InventoryGoneParams, null>({
  kind: "lab.inventory-gone",
  title: (p) => `Removing ansible inventory file ${p.path} and the lab's ssh masters in ${p.controlPathDir}`,
  async check(ctx, p) {
    return (
      !ours(p)(await readOr(ctx.host, p.path, "\0absent")) && !(await ctx.host.fs.exists(p.controlPathDir))
    );
  },
  async run(ctx, p) {
    await removeInventory(ctx, p.path, p.controlPathDir, ours(p));
    return null;
  },
});
