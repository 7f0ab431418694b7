// The durable journal: what aplspawn created, on disk before the next task starts, so rollback,
// resume and `run down` work after a crash. LXD's reverter, made durable.
//
// Format: an append-only log of JSON lines (a header, then begin/done/remove records), each append
// fdatasync'ed before the caller goes on. Appending keeps a change O(1) however many resources the
// lab has (rewriting the whole file per change made 1,000 tasks take seconds). When dead records
// pile up, the log is compacted: the live entries are written to a temp file, fsync'ed and renamed
// over the log, so the file on disk is always either the old log or the new one.
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { InternalError, JournalError } from "../errors.js";
import type { Host } from "../host/host.js";
import type { AnyTaskDef, JournaledShapes, Shape, ShapeIssue, TaskDef, UndoRecord } from "./task.js";

const entrySchema = z.object({
  seq: z.number().int().positive(),
  id: z.string().min(1),
  kind: z.string().min(1),
  /** What the resource belongs to within the lab (a container's name); absent for the lab itself. */
  scope: z.string().min(1).optional(),
  /** The kind's family ("net", "image", "container", …): which workflow's undo takes it. */
  family: z.string().min(1).optional(),
  /** Kept by an ordinary teardown (the lab's lasting state), removed only when purging. */
  kept: z.boolean().optional(),
  runId: z.string().min(1),
  /** running: intent written, run not finished; done: run finished, result known. */
  state: z.enum(["running", "done"]),
  params: z.unknown(),
  intent: z.unknown().optional(),
  result: z.unknown().optional(),
  startedAt: z.string(),
});

const headerSchema = z.object({
  format: z.literal("aplspawn-journal"),
  version: z.literal(2),
  lab: z.string(),
});

const recordSchema = z.discriminatedUnion("op", [
  z.object({ op: z.literal("begin"), entry: entrySchema }),
  z.object({ op: z.literal("done"), seq: z.number().int().positive(), result: z.unknown() }),
  z.object({ op: z.literal("remove"), seq: z.number().int().positive() }),
]);
type JournalRecord = z.infer<typeof recordSchema>;

/** One resource aplspawn created (or was creating when it stopped). */
export type JournalEntry = z.infer<typeof entrySchema>;

/** The journal file of a lab directory. */
export { journalPath } from "./journal-path.js";

const COMPACT_MIN_RECORDS = 256;

/** The journal of one lab. Concurrent changes share appends (group commit); each caller waits for its own. */
export class Journal {
  private pending: string[] = [];
  private waiters: { resolve(): void; reject(e: unknown): void }[] = [];
  private flushing = false;
  private records: number;

  private constructor(
    private readonly host: Host,
    readonly path: string,
    private readonly lab: string,
    private readonly live: Map<number, JournalEntry>,
    private nextSeq: number,
    records: number,
    /** Problems found while loading (reported by the runner, never silent). */
    readonly warnings: string[],
    private readonly persistent: boolean,
  ) {
    this.records = records;
  }

  /** Load the journal at `path` (empty when there is none). `persistent: false` never writes (dry run, reports). */
  static async open(host: Host, path: string, lab: string, persistent = true): Promise<Journal> {
    const warnings: string[] = [];
    const dir = dirname(path);
    if (await host.fs.exists(dir)) {
      for (const f of await host.fs.readdir(dir)) {
        if (f.startsWith(`.${basename(path)}.`) && f.endsWith(".tmp")) {
          warnings.push(
            `found ${join(dir, f)}, left by a journal compaction that was interrupted before it took effect; ` +
              `${path} is intact and is used${persistent ? "; the leftover was removed" : ""}`,
          );
          if (persistent) await host.fs.rm(join(dir, f));
        }
      }
    }
    const live = new Map<number, JournalEntry>();
    if (!(await host.fs.exists(path))) return new Journal(host, path, lab, live, 1, 0, warnings, persistent);
    const text = await host.fs.readFile(path);
    const lines = text.split("\n");
    const complete = text.endsWith("\n");
    if (complete) lines.pop();
    const bad = (n: number, why: string) =>
      new JournalError(
        `The journal ${path} is corrupt at line ${n} (${why}). aplspawn will not guess what it created. ` +
          "Inspect the file; to start over, move it aside and remove by hand what it lists.",
      );
    let nextSeq = 1;
    let tornTail = false;
    for (const [i, line] of lines.entries()) {
      const last = i === lines.length - 1;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        // A last line cut short was never acknowledged to anyone: the task it belonged to had not
        // gone on. Anything else unreadable means the file was damaged.
        if (last && !complete) {
          tornTail = true;
          warnings.push(
            `the last record of ${path} was cut off by a crash while it was written (${line.length} bytes); ` +
              "it was never acknowledged and is ignored",
          );
          break;
        }
        throw bad(i + 1, (e as Error).message);
      }
      if (i === 0) {
        const h = headerSchema.safeParse(raw);
        if (!h.success) throw bad(1, "not an aplspawn journal header");
        if (h.data.lab !== lab)
          throw new JournalError(`The journal ${path} belongs to lab "${h.data.lab}", not "${lab}".`);
        continue;
      }
      const r = recordSchema.safeParse(raw);
      if (!r.success) {
        const issue = r.error.issues[0];
        throw bad(i + 1, `${issue?.path.join(".") || "record"}: ${issue?.message}`);
      }
      apply(live, r.data);
      if (r.data.op === "begin") nextSeq = Math.max(nextSeq, r.data.entry.seq + 1);
    }
    if (lines.length === 0) throw bad(1, "empty file");
    const j = new Journal(host, path, lab, live, nextSeq, lines.length, warnings, persistent);
    if (persistent && (tornTail || j.records > 2 * live.size + COMPACT_MIN_RECORDS)) await j.compact();
    return j;
  }

  /** Entries in order of creation. */
  entries(): readonly JournalEntry[] {
    return [...this.live.values()];
  }

  /** Record the intent to create a resource; resolves once it is on disk. */
  async begin(e: Omit<JournalEntry, "seq" | "state" | "startedAt">): Promise<number> {
    const entry: JournalEntry = {
      ...e,
      seq: this.nextSeq++,
      state: "running",
      startedAt: new Date().toISOString(),
    };
    await this.commit({ op: "begin", entry });
    return entry.seq;
  }

  /** Record that the resource exists, with what rollback needs; resolves once on disk. */
  async complete(seq: number, result: unknown): Promise<void> {
    if (!this.live.has(seq)) throw new Error(`journal entry ${seq} vanished`);
    await this.commit({ op: "done", seq, result });
  }

  /** Forget a resource that was undone; resolves once on disk. */
  async remove(seq: number): Promise<void> {
    await this.commit({ op: "remove", seq });
  }

  private commit(r: JournalRecord): Promise<void> {
    apply(this.live, r);
    if (!this.persistent) return Promise.resolve();
    this.pending.push(`${JSON.stringify(r)}\n`);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    void this.flush();
    return done;
  }

  // One append (and one fdatasync) for everything queued meanwhile: group commit.
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        const waiters = this.waiters;
        this.pending = [];
        this.waiters = [];
        try {
          if (this.records === 0) batch.unshift(`${JSON.stringify(this.header())}\n`);
          await this.host.fs.appendDurable(this.path, batch.join(""), 0o600);
          this.records += batch.length;
          if (this.records > 4 * this.live.size + COMPACT_MIN_RECORDS) await this.compact();
          for (const w of waiters) w.resolve();
        } catch (e) {
          // Nothing of the batch is on disk (appendDurable cuts the file back), nor is what was
          // queued since, applied on top of it: all of it fails, and what the journal holds in
          // memory goes back to what is durable (a rollback then starts from that).
          const later = this.waiters;
          this.pending = [];
          this.waiters = [];
          await this.reload().catch(() => undefined);
          for (const w of [...waiters, ...later]) w.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  // Make the live entries what the file holds.
  private async reload(): Promise<void> {
    this.live.clear();
    if (!(await this.host.fs.stat(this.path))?.size) {
      this.records = 0; // not even the header made it: the next append writes it again
      return;
    }
    const durable = await Journal.open(this.host, this.path, this.lab, false);
    for (const e of durable.entries()) this.live.set(e.seq, e);
    this.records = durable.records;
  }

  private header() {
    return { format: "aplspawn-journal", version: 2, lab: this.lab } as const;
  }

  // Rewrite the log as just the live entries (temp file, fsync, rename).
  private async compact(): Promise<void> {
    const lines = [JSON.stringify(this.header())];
    for (const e of this.live.values()) {
      const { result, ...rest } = e;
      lines.push(JSON.stringify({ op: "begin", entry: { ...rest, state: "running" } }));
      if (e.state === "done") lines.push(JSON.stringify({ op: "done", seq: e.seq, result }));
    }
    await this.host.fs.writeFile(this.path, `${lines.join("\n")}\n`, 0o600);
    this.records = lines.length;
  }
}

function apply(live: Map<number, JournalEntry>, r: JournalRecord): void {
  if (r.op === "begin") live.set(r.entry.seq, r.entry);
  else if (r.op === "remove") live.delete(r.seq);
  else {
    const e = live.get(r.seq);
    if (e) live.set(r.seq, { ...e, state: "done", result: r.result });
  }
}

// Check one journaled value; what does not fit goes to `issues`, named from the entry (params.rule.table).
function check<T>(shape: Shape<T>, value: unknown, name: string, issues: string[]) {
  const r = shape.safeParse(value);
  if (!r.success) {
    const at = (i: ShapeIssue) => [name, ...i.path.map(String)].join(".");
    issues.push(...r.error.issues.map((i) => `${at(i)}: ${i.message}`));
  }
  return r;
}

/**
 * What a journal entry holds, checked against the shapes its kind journals: params always; intent
 * when the entry has one (entries journaled before a kind had one have none); result only when the
 * entry is done. A value without a declared shape is left out (undefined), never passed on unchecked.
 * Throws a JournalError naming the entry when something does not fit: nothing may act on it.
 */
export function recordOf<P, I, R>(e: JournalEntry, shapes: JournaledShapes<P, I, R>): UndoRecord<P, I, R> {
  const issues: string[] = [];
  const params = check(shapes.params, e.params, "params", issues);
  const intent =
    shapes.intent && e.intent !== undefined ? check(shapes.intent, e.intent, "intent", issues) : undefined;
  const result =
    shapes.result && e.state === "done" ? check(shapes.result, e.result, "result", issues) : undefined;
  if (!params.success || issues.length > 0) {
    const more = issues.length > 3 ? `; and ${issues.length - 3} more` : "";
    throw new JournalError(
      `journal entry ${e.id} (kind ${e.kind}) does not hold what ${e.kind} journals ` +
        `(${issues.slice(0, 3).join("; ")}${more}): it is not acted on and stays in the journal ` +
        "(written by another aplspawn version, or edited?)",
    );
  }
  return {
    params: params.data,
    intent: intent?.success ? intent.data : undefined,
    result: result?.success ? result.data : undefined,
  };
}

/** The record `def`'s rollback gets for entry `e` (see recordOf); a kind that declares no shapes is a bug. */
export function undoRecordFor<P, R, I>(
  def: Pick<TaskDef<P, R, I>, "kind" | "journaled">,
  e: JournalEntry,
): UndoRecord<P, I, R> {
  if (!def.journaled)
    throw new InternalError(
      `task kind ${def.kind} has a rollback but declares no journaled shapes (journaled.params)`,
    );
  return recordOf(e, def.journaled);
}

/** The title of undoing `e`: its kind's own, from params that fit the kind's shape; else the entry's id. */
export function undoTitleOf(def: AnyTaskDef | undefined, e: JournalEntry): string {
  const p = def?.journaled?.params.safeParse(e.params);
  if (!def || !p?.success) return `Undoing ${e.id}`;
  return def.rollbackTitle ? def.rollbackTitle(p.data) : `Undoing: ${def.title(p.data)}`;
}
