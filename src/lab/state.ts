// What runs of a lab, for the report commands (pids, exec): the journal says which processes
// aplspawn started; /proc says whether those very processes still run.
import { containerSpecs } from "../../config/containers.js";
import { labDir, mergedDir } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import type { Host } from "../host/host.js";
import { isAlive } from "../host/proc.js";
import { Journal, journalPath } from "../runner/journal.js";
import { entryScope } from "./entries.js";
import { findNspawn, recordedNspawn } from "./nspawn-procs.js";

/** A container of the lab and its processes, when it runs. */
export interface ContainerState {
  name: string;
  ip: string | undefined;
  nspawnPid?: number;
  leaderPid?: number;
}

interface NspawnEntryParams {
  name: string;
  merged: string;
}

/** Every container the config or the journal knows, with its live nspawn and leader PIDs. */
export async function containerStates(
  host: Host,
  c: Config,
  o: { journaledOnly?: boolean } = {},
): Promise<ContainerState[]> {
  const journal = await Journal.open(host, journalPath(labDir(c)), c.lab, false);
  const byName = new Map<string, ContainerState & { merged: string; rec?: { pid: number; start: number } }>();
  for (const s of containerSpecs(c))
    byName.set(s.name, { name: s.name, ip: s.ip, merged: mergedDir(c, s.name) });
  for (const e of journal.entries()) {
    if (e.kind !== "container.nspawn") continue;
    const name = entryScope(e);
    const p = e.params as NspawnEntryParams;
    if (!name) continue;
    const cur = byName.get(name) ?? { name, ip: undefined, merged: p.merged };
    // Later entries are newer starts of the same container.
    const r = e.state === "done" ? (e.result as { pid: number; start: number } | undefined) : undefined;
    byName.set(name, { ...cur, merged: p.merged, ...(r ? { rec: r } : {}) });
  }
  const out: ContainerState[] = [];
  for (const s of byName.values()) {
    const n =
      (s.rec && (await recordedNspawn(host, s.rec, s.name, s.merged))) ||
      (o.journaledOnly ? undefined : (await findNspawn(host, s.name, s.merged))[0]);
    const st: ContainerState = { name: s.name, ip: s.ip };
    if (n?.leader && (await isAlive(host, n.leader))) {
      st.nspawnPid = n.pid;
      st.leaderPid = n.leader;
    }
    out.push(st);
  }
  return out;
}
