// What runs of a lab, for the report commands (pids, exec): the journal says which processes
// aplspawn started; /proc says whether those very processes still run.
import { JournalError } from "../errors.js";
import type { Host } from "../host/host.js";
import { isAlive } from "../host/proc.js";
import { runContext } from "../host/run-scope.js";
import { Journal, type JournalEntry, journalPath, recordOf } from "../runner/journal.js";
import { entryScope } from "./entries.js";
import { findNspawn, nspawnParamsSchema, nspawnResultSchema, recordedNspawn } from "./nspawn-procs.js";

/** What a report reads of a lab, from its config (workflows/lab-params.ts labLook). */
export interface LabLook {
  /** The lab's name and directory: where its journal is. */
  lab: string;
  labDir: string;
  /** Its subnet, e.g. 10.10.12.0/26. */
  subnet: string;
  /** The containers its config names: each one's address and merged root. */
  containers: readonly { name: string; ip: string; merged: string }[];
}

/** A container of the lab and its processes, when it runs. */
export interface ContainerState {
  name: string;
  ip: string | undefined;
  nspawnPid?: number;
  leaderPid?: number;
}

// A container.nspawn entry's params and result, checked; undefined (and a warning) when they do not fit.
function nspawnRecord(e: JournalEntry, warn: ((message: string) => void) | undefined) {
  try {
    return recordOf(e, { params: nspawnParamsSchema, result: nspawnResultSchema });
  } catch (err) {
    if (!(err instanceof JournalError)) throw err;
    warn?.(`${err.message}; no process is looked up from it`);
    return undefined;
  }
}

/**
 * Every container the config or the journal knows, with its live nspawn and leader PIDs. A
 * container.nspawn entry that does not hold what that kind journals is left out, with a warning:
 * its PIDs are never trusted (`journaledOnly` then finds no process; else the live host is asked).
 * A look of its own (a run scope of its own: src/host/run-scope.ts).
 */
export async function containerStates(
  host: Host,
  l: Omit<LabLook, "subnet">,
  o: { journaledOnly?: boolean; warn?(message: string): void } = {},
): Promise<ContainerState[]> {
  const journal = await Journal.open(host, journalPath(l.labDir), l.lab, false);
  for (const w of journal.warnings) o.warn?.(w);
  const byName = new Map<string, ContainerState & { merged: string; rec?: { pid: number; start: number } }>();
  for (const s of l.containers) byName.set(s.name, { name: s.name, ip: s.ip, merged: s.merged });
  for (const e of journal.entries()) {
    if (e.kind !== "container.nspawn") continue;
    const name = entryScope(e);
    const rec = name ? nspawnRecord(e, o.warn) : undefined;
    if (!name || !rec) continue;
    const { params: p, result: r } = rec;
    const cur = byName.get(name) ?? { name, ip: undefined, merged: p.merged };
    // Later entries are newer starts of the same container.
    byName.set(name, { ...cur, merged: p.merged, ...(r ? { rec: r } : {}) });
  }
  const ctx = runContext(host);
  const out: ContainerState[] = [];
  for (const s of byName.values()) {
    const n =
      (s.rec && (await recordedNspawn(ctx, s.rec, s.name, s.merged))) ||
      (o.journaledOnly ? undefined : (await findNspawn(ctx, s.name, s.merged))[0]);
    const st: ContainerState = { name: s.name, ip: s.ip };
    if (n?.leader && (await isAlive(host, n.leader))) {
      st.nspawnPid = n.pid;
      st.leaderPid = n.leader;
    }
    out.push(st);
  }
  return out;
}

/** A lab at a glance (`aplspawn labs`, `status` of a lab that is down). */
export interface LabState {
  containers: number;
  containersUp: number;
  /** Whether the journal holds anything `run down` would undo (what runs or stays of the lab). */
  live: boolean;
  /** The lab's subnet, e.g. 10.10.12.0/26. */
  subnet: string;
}

/** What of the lab runs: its containers (by the processes the journal recorded) and its journal. */
export async function labState(host: Host, l: LabLook): Promise<LabState> {
  const states = await containerStates(host, l, { journaledOnly: true });
  const journal = await Journal.open(host, journalPath(l.labDir), l.lab, false);
  return {
    containers: l.containers.length,
    containersUp: states.filter((s) => s.leaderPid !== undefined).length,
    live: journal.entries().some((e) => !e.kept),
    subnet: l.subnet,
  };
}
