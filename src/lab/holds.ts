// Settings that every lab on the host relies on at once (fs.inotify.max_user_instances, and
// net.ipv4.ip_forward of a network namespace). Each lab that relies on one holds it: a record per
// setting under /run names the holders, the value found before the first of them, and the values
// aplspawn wrote. The value is put back only when the last holder lets go, and only if it is still
// one aplspawn wrote (someone else's later change is theirs to keep). A holder whose journal is
// gone (its lab directory was deleted by hand) no longer counts. Reads and changes of a record are
// serialized by one lock file.
import { z } from "zod";
import type { Host } from "../host/host.js";
import { withHostLock } from "../host/lock.js";
import { journalPath } from "../runner/journal-path.js";

/** One shared setting: where its record lives and how to read and write its value. */
export interface SharedSetting {
  /** Names the record, e.g. "inotify" or "ip_forward-4026531840" (setting and scope). */
  key: string;
  read(): Promise<string>;
  write(value: string): Promise<void>;
}

/** Who holds: the lab directory, and the journal whose presence shows the lab still exists. */
export const holderSchema = z.object({ lab: z.string(), journal: z.string() });
export type Holder = z.infer<typeof holderSchema>;

/** The lab (its directory) as a holder: it exists while its journal does. */
export const labHolder = (lab: string): Holder => ({ lab, journal: journalPath(lab) });

interface HoldRecord {
  original: string;
  wrote: string[];
  holders: Holder[];
}

const RUN = "/run";
/** The record of one setting. */
export const recordPath = (key: string) => `${RUN}/aplspawn-hold.${key}.json`;
const LOCK = "/run/aplspawn/holds.lock";

function withLock<T>(host: Host, signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> {
  return withHostLock(host, LOCK, "aplspawn (shared settings)", signal, async () => {
    await sweepTemps(host);
    return f();
  });
}

// The remains of writers killed midway (a crash test's SIGKILL left both kinds in /run). Records
// are written only under the lock (temp file, then rename): a record's temp file found while we
// hold it is such a remain. The lock's own temp files (createExclusive: `.<name>.<pid>-<hex>.tmp`)
// are written without it: only those whose writer is gone.
async function sweepTemps(host: Host): Promise<void> {
  for (const n of await host.fs.readdir(RUN).catch(() => [] as string[])) {
    if (!n.endsWith(".tmp")) continue;
    const writer = Number(/^\.aplspawn-holds\.lock\.(\d+)-[0-9a-f]+\.tmp$/.exec(n)?.[1] ?? 0);
    if (n.startsWith(".aplspawn-hold.") || (writer > 0 && !host.kill(writer, 0)))
      await host.fs.rm(`${RUN}/${n}`);
  }
}

async function load(host: Host, key: string): Promise<HoldRecord | undefined> {
  try {
    const r = JSON.parse(await host.fs.readFile(recordPath(key))) as HoldRecord;
    return Array.isArray(r.holders) && Array.isArray(r.wrote) && typeof r.original === "string"
      ? r
      : undefined;
  } catch {
    return undefined;
  }
}

async function live(host: Host, holders: readonly Holder[]): Promise<Holder[]> {
  const out: Holder[] = [];
  for (const h of holders) if (await host.fs.exists(h.journal)) out.push(h);
  return out;
}

/** Whether `lab` holds the setting. */
export async function holdsSetting(host: Host, s: SharedSetting, lab: string): Promise<boolean> {
  return (await load(host, s.key))?.holders.some((h) => h.lab === lab) ?? false;
}

/**
 * Hold the setting for `holder`; `want` says what value the lab needs given the current one
 * (undefined: the current one will do). Returns the value it wrote, if it wrote one.
 */
export async function holdSetting(
  host: Host,
  s: SharedSetting,
  holder: Holder,
  want: (current: string) => string | undefined,
  signal?: AbortSignal,
): Promise<{ wrote?: string }> {
  return withLock(host, signal, async () => {
    const current = await s.read();
    const found = await load(host, s.key);
    const others = found ? (await live(host, found.holders)).filter((h) => h.lab !== holder.lab) : [];
    // A record whose holders are all gone (labs deleted without `run down`) still knows the value
    // to come back to, as long as the value there now is one aplspawn wrote. Otherwise it is stale
    // (a namespace gone and its inode number reused): the value there now is the one to come back to.
    const carry = found && (others.length > 0 || found.wrote.includes(current));
    const rec: HoldRecord = carry
      ? { ...found, holders: [...others, holder] }
      : { original: current, wrote: [], holders: [holder] };
    const target = want(current);
    const writes = target !== undefined && target !== current;
    if (writes && !rec.wrote.includes(target)) rec.wrote.push(target);
    // The record first: a run cancelled between the two then still finds what to put back.
    await host.fs.writeFile(recordPath(s.key), `${JSON.stringify(rec)}\n`, 0o600);
    if (writes) await s.write(target);
    return writes ? { wrote: target } : {};
  });
}

/** What letting go did: the value put back, or the labs that still hold it. */
export interface Release {
  restored?: string;
  /** The value was left: changed since by someone other than aplspawn. */
  leftChanged?: string;
  others: string[];
}

/** Let go of the setting for `lab`; the last holder puts the original value back. */
export async function releaseSetting(
  host: Host,
  s: SharedSetting,
  lab: string,
  signal?: AbortSignal,
): Promise<Release> {
  return withLock(host, signal, async () => {
    const rec = await load(host, s.key);
    if (!rec) return { others: [] };
    const others = (await live(host, rec.holders)).filter((h) => h.lab !== lab);
    if (others.length > 0) {
      await host.fs.writeFile(recordPath(s.key), `${JSON.stringify({ ...rec, holders: others })}\n`, 0o600);
      return { others: others.map((h) => h.lab) };
    }
    await host.fs.rm(recordPath(s.key));
    const current = await s.read();
    if (current === rec.original) return { others: [] };
    if (!rec.wrote.includes(current)) return { leftChanged: current, others: [] };
    await s.write(rec.original);
    return { restored: rec.original, others: [] };
  });
}
