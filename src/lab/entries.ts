// Readers of a lab's journal entries: what each entry carries as data (its scope, family and
// whether an ordinary teardown keeps it), and for entries journaled before those fields existed,
// what their id and kind imply.
import type { JournalRef } from "../runner/task.js";

// Journals before entries carried their scope: the container's name is in the id, "kind[NAME]".
const legacyContainer = (id: string) => /^container\.[^[]+\[(.+)\]$/.exec(id)?.[1];

/** The container an entry belongs to; undefined for the lab's own entries. */
export const entryScope = (e: JournalRef): string | undefined =>
  e.scope ?? (e.family === undefined ? legacyContainer(e.id) : undefined);

/** The entry's family ("net", "image", "container", "lab", "host"). */
export const entryFamily = (e: JournalRef): string => e.family ?? e.kind.split(".")[0] ?? e.kind;

/** Whether an ordinary teardown keeps the entry's resource; `legacyKept` for entries without the flag. */
export const entryKept = (e: JournalRef, legacyKept: readonly string[]): boolean =>
  e.kept ?? (e.family === undefined && legacyKept.includes(e.kind));
