// Undoing journaled resources: a run's own changes after a failure or an interrupt (its rollback),
// and the undo steps of teardown workflows, which take entries of any earlier run from the journal.
// Each entry's code is found by its kind in the registry: the journal alone is enough.
import { Listr } from "listr2";
import { errorMessage } from "../errors.js";
import type { Host } from "../host/host.js";
import type { FaultPlan } from "./faults.js";
import { type Journal, type JournalEntry, undoRecordFor, undoTitleOf } from "./journal.js";
import type { AnyListrTask, RunState, Wrapper } from "./run-state.js";
import type { AnyTaskDef, FailedRun, UndoStep } from "./task.js";
import { confinedHost, type UndoScope } from "./undo-scope.js";

/** What undoing needs of the run. */
export interface UndoOptions {
  host: Host;
  registry: ReadonlyMap<string, AnyTaskDef>;
  journal: Journal;
  state: RunState;
  faults: FaultPlan;
  dryRun: boolean;
  /** Where undoing an entry may act on paths (undo-scope.ts); anywhere without it (runner tests). */
  scope?: UndoScope;
}

/** Listr tasks of a set of entries, with how many of them failed once they ran. */
interface UndoTasks {
  tasks: AnyListrTask[];
  failures(): number;
}

export class Undo {
  constructor(private readonly o: UndoOptions) {}

  /**
   * Roll back this run's entries (after a failure or an interrupt), shown as a list of its own;
   * `failed`: the run, when it failed (each rollback gets it: see TaskContext.failedRun).
   */
  async rollback(entries: readonly JournalEntry[], title: string, failed?: FailedRun): Promise<void> {
    if (entries.length === 0) return;
    this.o.state.emit({ event: "group", id: "rollback", title });
    const { tasks } = this.tasks(entries, failed);
    const parent: AnyListrTask = {
      title,
      task: (_c, lt) => lt.newListr(tasks, { concurrent: false, exitOnError: false }),
    };
    await new Listr([parent], {
      ...this.o.state.listrOptions(),
      concurrent: false,
      exitOnError: false,
      registerSignalListeners: false,
    })
      .run()
      .catch(() => undefined);
  }

  /** An undo step of a workflow: the entries it selects, undone; a failure fails the run after all are tried. */
  step(step: UndoStep, lt: Wrapper) {
    const { state } = this.o;
    const journal = this.o.journal.entries();
    const entries = journal.filter((e) => step.select(e, journal));
    const t0 = performance.now();
    const injectFault = () => {
      const f = this.o.faults.after(step.id);
      if (f) state.fail(step, step.title, t0, f);
    };
    if (entries.length === 0) {
      lt.title = `${step.title} [nothing to undo]`;
      state.emitTask(step, step.title, "ok", t0);
      state.counts.unchanged++;
      injectFault();
      return;
    }
    if (this.o.dryRun) {
      const commands = [...entries].reverse().map((e) => this.title(e));
      state.counts.wouldChange++;
      lt.title = `${step.title} [would change]`;
      lt.output = commands.join("\n");
      state.emitTask(step, step.title, "would-change", t0, { commands });
      return;
    }
    state.emitTask(step, step.title, "running", t0);
    const { tasks, failures } = this.lanes(step, entries);
    // Every entry is tried even when one fails; the untitled last task (hidden by listr2) then
    // fails the run, which stops the steps after this one.
    const finish: AnyListrTask = {
      task: () => {
        if (failures() === 0) {
          state.counts.changed++;
          state.emitTask(step, step.title, "changed", t0);
          injectFault();
          return;
        }
        state.fail(
          step,
          step.title,
          t0,
          new Error(
            `${failures()} of ${entries.length} resources could not be undone; they stay in the journal, run again to retry`,
          ),
        );
      },
    };
    return lt.newListr([...tasks, finish], { concurrent: false, exitOnError: false });
  }

  /** Listr tasks undoing entries newest first; a failing one is reported and kept, the rest still run. */
  private tasks(entries: readonly JournalEntry[], failed?: FailedRun): UndoTasks {
    let failures = 0;
    const newestFirst = [...entries].reverse();
    const tasks: AnyListrTask[] = newestFirst.map((e, i) => ({
      title: this.title(e),
      task: async (_c, lt) => {
        try {
          await this.entry(e, lt, newestFirst.slice(i + 1), failed);
        } catch (err) {
          failures++;
          throw err;
        }
      },
    }));
    return { tasks, failures: () => failures };
  }

  // Entries of different lanes (e.g. containers) are undone concurrently; within a lane, and for
  // entries without one, newest first.
  private lanes(step: UndoStep, entries: readonly JournalEntry[]): UndoTasks {
    if (!step.lane) return this.tasks(entries);
    const lanes = new Map<string, JournalEntry[]>();
    const rest: JournalEntry[] = [];
    for (const e of entries) {
      const key = step.lane(e);
      if (key === undefined) rest.push(e);
      else lanes.set(key, [...(lanes.get(key) ?? []), e]);
    }
    const parts = [...lanes].map(([key, es]) => ({ key, ...this.tasks(es) }));
    const tail = this.tasks(rest);
    const laneTasks: AnyListrTask[] = parts.map((p) => ({
      title: p.key,
      task: (_c, lt) => lt.newListr(p.tasks, { concurrent: false, exitOnError: false }),
    }));
    const group: AnyListrTask = {
      title: `${parts.length} at once`,
      task: (_c, lt) =>
        lt.newListr(laneTasks, {
          concurrent: step.concurrency && step.concurrency > 1 ? step.concurrency : false,
          exitOnError: false,
        }),
    };
    return {
      tasks: [...(laneTasks.length > 0 ? [group] : []), ...tail.tasks],
      failures: () => parts.reduce((n, p) => n + p.failures(), tail.failures()),
    };
  }

  private title(e: JournalEntry): string {
    return undoTitleOf(this.o.registry.get(e.kind), e);
  }

  private async entry(
    e: JournalEntry,
    lt: Wrapper,
    after: readonly JournalEntry[],
    failed?: FailedRun,
  ): Promise<void> {
    const { state } = this.o;
    const t0 = performance.now();
    const title = this.title(e);
    const def = this.o.registry.get(e.kind);
    try {
      if (!def?.rollback) throw new Error(`no rollback is known for task kind "${e.kind}"`);
      const rec = undoRecordFor(def, e);
      // A journal is data: what it names is acted on only within the lab's places.
      const { scope } = this.o;
      const host = scope
        ? confinedHost(this.o.host, [...scope(e), ...(def.undoPaths?.(rec) ?? [])], e.id)
        : this.o.host;
      // Rollback must run even after an interrupt: it gets a signal of its own.
      const ctx = state.context(e.id, lt, host, new AbortController().signal, failed);
      await def.rollback({ ...ctx, undoneAfter: after }, rec);
      await this.o.journal.remove(e.seq);
      state.counts.rolledBack++;
      state.emitTask(e, title, "rolled-back", t0);
    } catch (err) {
      state.counts.rollbackFailed++;
      state.emitTask(e, title, "rollback-failed", t0, { error: errorMessage(err) });
      throw err;
    }
  }
}
