// The durable journal: what aplspawn created, written to disk after every change (temp file,
// fsync, rename), so rollback, resume and `run down` work after a crash. LXD's reverter, on disk.
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import type { Host } from "../host/host.js";
import { JournalError } from "./errors.js";

const entrySchema = z.object({
  seq: z.number().int().positive(),
  id: z.string().min(1),
  kind: z.string().min(1),
  runId: z.string().min(1),
  /** running: intent written, run not finished; done: run finished, result known. */
  state: z.enum(["running", "done"]),
  params: z.unknown(),
  intent: z.unknown().optional(),
  result: z.unknown().optional(),
  startedAt: z.string(),
});

const fileSchema = z.object({
  format: z.literal("aplspawn-journal"),
  version: z.literal(1),
  lab: z.string(),
  nextSeq: z.number().int().positive(),
  entries: z.array(entrySchema),
});

/** One resource aplspawn created (or was creating when it stopped). */
export type JournalEntry = z.infer<typeof entrySchema>;

/** The journal of one lab. Concurrent changes share writes (group commit); each caller waits for its own. */
export class Journal {
  private writing: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  private constructor(
    private readonly host: Host,
    readonly path: string,
    private readonly data: z.infer<typeof fileSchema>,
    /** Problems found while loading that were repaired (reported, never silent). */
    readonly warnings: string[],
    private readonly persistent: boolean,
  ) {}

  /** Load the journal at `path` (an empty one when there is none). `persistent: false` never writes (dry run). */
  static async open(host: Host, path: string, lab: string, persistent = true): Promise<Journal> {
    const warnings: string[] = [];
    const dir = dirname(path);
    const name = basename(path);
    if (await host.fs.exists(dir)) {
      for (const f of await host.fs.readdir(dir)) {
        if (f.startsWith(`.${name}.`) && f.endsWith(".tmp")) {
          warnings.push(
            `found ${join(dir, f)}, left by a journal write that was interrupted before it took effect; ` +
              `${path} is intact and is used${persistent ? "; the leftover was removed" : ""}`,
          );
          if (persistent) await host.fs.rm(join(dir, f));
        }
      }
    }
    if (!(await host.fs.exists(path))) {
      return new Journal(
        host,
        path,
        { format: "aplspawn-journal", version: 1, lab, nextSeq: 1, entries: [] },
        warnings,
        persistent,
      );
    }
    const text = await host.fs.readFile(path);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new JournalError(
        `The journal ${path} is corrupt (${(e as Error).message}; ${text.length} bytes). aplspawn will not guess ` +
          `what it created. Inspect the file; to start over, move it aside and remove by hand what it lists.`,
      );
    }
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new JournalError(
        `The journal ${path} is not a valid aplspawn journal (${issue?.path.join(".") || "top level"}: ${issue?.message}). ` +
          "aplspawn will not guess what it created. Inspect the file; to start over, move it aside.",
      );
    }
    if (parsed.data.lab !== lab)
      throw new JournalError(`The journal ${path} belongs to lab "${parsed.data.lab}", not "${lab}".`);
    return new Journal(host, path, parsed.data, warnings, persistent);
  }

  /** Entries in order of creation. */
  entries(): readonly JournalEntry[] {
    return this.data.entries;
  }

  /** Record the intent to create a resource; resolves once it is on disk. */
  async begin(e: Omit<JournalEntry, "seq" | "state" | "startedAt">): Promise<number> {
    const seq = this.data.nextSeq++;
    this.data.entries.push({ ...e, seq, state: "running", startedAt: new Date().toISOString() });
    await this.persist();
    return seq;
  }

  /** Record that the resource exists, with what rollback needs; resolves once on disk. */
  async complete(seq: number, result: unknown): Promise<void> {
    const e = this.data.entries.find((x) => x.seq === seq);
    if (!e) throw new Error(`journal entry ${seq} vanished`);
    e.state = "done";
    e.result = result;
    await this.persist();
  }

  /** Forget a resource that was undone; resolves once on disk. */
  async remove(seq: number): Promise<void> {
    const i = this.data.entries.findIndex((x) => x.seq === seq);
    if (i >= 0) this.data.entries.splice(i, 1);
    await this.persist();
  }

  /** Write the current state; concurrent callers share the next write. */
  private persist(): Promise<void> {
    if (!this.persistent) return Promise.resolve();
    if (this.queued) return this.queued;
    if (!this.writing) {
      this.writing = this.write().finally(() => {
        this.writing = undefined;
      });
      return this.writing;
    }
    const after = this.writing.catch(() => undefined);
    this.queued = after.then(() => {
      this.queued = undefined;
      this.writing = this.write().finally(() => {
        this.writing = undefined;
      });
      return this.writing;
    });
    return this.queued;
  }

  private async write(): Promise<void> {
    const text = `${JSON.stringify(this.data, null, 1)}\n`;
    if (this.data.entries.length === 0 && !(await this.host.fs.exists(this.path))) return;
    await this.host.fs.writeFile(this.path, text, 0o600);
  }
}
