// Where a lab's journal lives (its own module: config/paths uses it without loading the journal).
import { join } from "node:path";

/** The journal file of the lab whose state is in labDir. */
export const journalPath = (labDir: string) => join(labDir, "journal.jsonl");
