// Runs a workflow: checks, runs, journals, rolls back, locks, handles signals, reports.
// It knows nothing of bridges or containers: it drives any TaskDef.
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { join } from "node:path";
import { Listr, type ListrTask, type ListrTaskWrapper } from "listr2";
import { dryHost } from "../host/dry-host.js";
import type { Host } from "../host/host.js";
import { replaceableBy } from "../host/trusted-path.js";
import { ExitError, errorMessage, InterruptedError, TaskFailedError } from "./errors.js";
import { Journal, type JournalEntry, journalPath } from "./journal.js";
import { acquireLock } from "./lock.js";
import type { OutputMode, RunEvent, SummaryEvent, TaskState } from "./report.js";
import {
  type AnyTaskDef,
  familyOf,
  type GroupStep,
  holds,
  type Step,
  type TaskContext,
  type TaskStep,
  type UndoStep,
  type Workflow,
} from "./task.js";

/** How to run a workflow. */
export interface RunOptions {
  host: Host;
  lab: string;
  /** The lab's state directory: journal and lock live here. */
  labDir: string;
  /** Every task kind, by kind name: rollback finds its code here from the journal alone. */
  registry: ReadonlyMap<string, AnyTaskDef>;
  mode: OutputMode;
  /** Receives every event (the CLI prints them). */
  emit(e: RunEvent): void;
  dryRun?: boolean;
  noRollback?: boolean;
  /** Glob of task ids: fail right after such a task's run succeeded (fault injection). */
  failAfter?: string;
  /** Shown to a second process that finds the lab locked. */
  command: string;
  /**
   * Aborting this interrupts the run: what runs is cancelled and this run's changes are rolled
   * back (the CLI aborts it on the first SIGINT/SIGTERM; signals are the CLI's, not the runner's).
   */
  interrupt?: AbortSignal;
}

// biome-ignore lint/suspicious/noExplicitAny: the renderer is chosen at run time
type AnyListrTask = ListrTask<unknown, any, any>;
// biome-ignore lint/suspicious/noExplicitAny: the renderer is chosen at run time
type Wrapper = ListrTaskWrapper<unknown, any, any>;

/** Run a workflow to the end; on failure roll back this run's changes and throw. */
export async function runWorkflow(wf: Workflow, opts: RunOptions): Promise<SummaryEvent> {
  const r = new Run(wf, opts);
  return r.start();
}

const failAfterRegex = (glob: string) =>
  new RegExp(
    `^(?:${glob
      .split(",")
      .map((g) =>
        g
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replaceAll("*", ".*")
          .replaceAll("?", "."),
      )
      .join("|")})$`,
  );

/** The failure APLSPAWN_FAIL_AFTER injects. */
class InjectedFault extends Error {
  override name = "InjectedFault";
}

class Run {
  private readonly runId = `${new Date().toISOString()}-${randomBytes(3).toString("hex")}`;
  private readonly controller = new AbortController();
  private readonly inflight = new Set<Promise<unknown>>();
  private journal!: Journal;
  private firstFailure: { id: string; error: unknown } | undefined;
  private interrupted = false;
  private readonly counts = {
    changed: 0,
    unchanged: 0,
    failed: 0,
    cancelled: 0,
    rolledBack: 0,
    rollbackFailed: 0,
    wouldChange: 0,
    skipped: 0,
  };
  private readonly t0 = performance.now();
  private readonly failAfter: RegExp | undefined;

  constructor(
    private readonly wf: Workflow,
    private readonly o: RunOptions,
  ) {
    this.failAfter = o.failAfter ? failAfterRegex(o.failAfter) : undefined;
    // Every concurrent task's commands listen on this one signal (30 containers: hundreds).
    setMaxListeners(0, this.controller.signal);
  }

  async start(): Promise<SummaryEvent> {
    const { host, labDir } = this.o;
    let lock: { release(): Promise<void> } | undefined;
    // The journal, the lock and what the tasks keep there are root's alone, like ssh's StrictModes.
    const open = await replaceableBy(host, labDir);
    if (open)
      throw new ExitError(
        `${labDir} is not root's alone: ${open}; another local user could replace what aplspawn keeps there. Choose a workdir whose every directory is root's and writable by no one else (a sticky one such as /tmp is fine)`,
      );
    if (!this.o.dryRun) {
      await host.fs.mkdir(labDir, 0o700);
      await host.fs.chmod(labDir, 0o700);
      const l = await acquireLock(host, join(labDir, "lock"), this.o.command);
      lock = l;
      if (l.tookOverFrom)
        this.o.emit({
          event: "warning",
          message: `took over the lock of PID ${l.tookOverFrom.pid}, which is no longer running`,
        });
    }
    const removeSignals = this.installSignals();
    try {
      this.journal = await Journal.open(host, journalPath(labDir), this.o.lab, !this.o.dryRun);
      for (const w of this.journal.warnings) this.o.emit({ event: "warning", message: w });
      const stale = this.journal.entries().filter((e) => e.state === "running");
      if (stale.length > 0)
        this.o.emit({
          event: "warning",
          message: `an earlier run stopped in the middle of ${stale.map((e) => e.id).join(", ")}; continuing from the live state`,
        });
      await this.execute();
      return this.finish();
    } catch (e) {
      this.finish(e);
      throw e;
    } finally {
      removeSignals();
      await lock?.release();
    }
  }

  private installSignals(): () => void {
    const onInterrupt = () => {
      this.interrupted = true;
      this.o.emit({
        event: "warning",
        message: "interrupted: stopping and rolling back (interrupt again to exit at once)",
      });
      this.controller.abort(new InterruptedError("Interrupted"));
    };
    const i = this.o.interrupt;
    if (i?.aborted) onInterrupt();
    else i?.addEventListener("abort", onInterrupt, { once: true });
    return () => i?.removeEventListener("abort", onInterrupt);
  }

  private listrOptions() {
    return this.o.mode === "tty"
      ? ({
          renderer: "default",
          rendererOptions: { collapseSubtasks: false, collapseErrors: false },
        } as const)
      : ({ renderer: "silent" } as const);
  }

  private async execute(): Promise<void> {
    const list = new Listr(
      this.wf.steps.map((s) => this.toListr(s)),
      {
        ...this.listrOptions(),
        concurrent: false,
        exitOnError: true,
        registerSignalListeners: false,
      },
    );
    try {
      await list.run();
    } catch (e) {
      this.firstFailure ??= { id: this.wf.name, error: e };
    }
    // Let every task that is still running settle before anything is undone.
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    if (!this.firstFailure && !this.interrupted) return;
    if (!this.o.noRollback && !this.o.dryRun)
      await this.rollback(
        this.journal.entries().filter((e) => e.runId === this.runId),
        "Rolling back this run",
      );
    if (this.interrupted) throw new InterruptedError("Interrupted");
    const f = this.firstFailure!;
    throw new TaskFailedError(f.id, f.error, this.counts.rollbackFailed);
  }

  private finish(error?: unknown): SummaryEvent {
    const s: SummaryEvent = {
      event: "summary",
      workflow: this.wf.name,
      ok: error === undefined,
      ...this.counts,
      durationMs: Math.round(performance.now() - this.t0),
    };
    if (error !== undefined) {
      s.error = errorMessage(error);
      if (error instanceof TaskFailedError) s.failedTask = error.taskId;
    }
    this.o.emit(s);
    return s;
  }

  private toListr(step: Step): AnyListrTask {
    switch (step.type) {
      case "task":
        return {
          title: step.def.title(step.params),
          task: (_c, lt) => this.track(this.execTask(step, lt)),
          // A task's notes (sizes, addresses) stay under it on a terminal once it is done.
          rendererOptions: { persistentOutput: true },
        };
      case "group":
        return { title: step.title, task: (_c, lt) => this.group(step, lt) };
      case "undo":
        return { title: step.title, task: (_c, lt) => this.undoStep(step, lt) };
    }
  }

  private group(step: GroupStep, lt: Wrapper) {
    this.o.emit({ event: "group", id: step.id, title: step.title });
    const c = step.concurrency ?? 1;
    return lt.newListr(
      step.steps.map((s) => this.toListr(s)),
      { concurrent: c > 1 ? c : false, exitOnError: true },
    );
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  private context(
    id: string,
    lt: Wrapper | undefined,
    host: Host,
    signal: AbortSignal,
  ): TaskContext & { done(): void } {
    const notes: string[] = [];
    return {
      host,
      signal,
      tty: this.o.mode === "tty",
      info: (message) => {
        notes.push(message);
        if (lt) lt.output = notes.join("\n");
        this.o.emit({ event: "info", id, message });
      },
      progress: (message) => {
        if (lt && this.o.mode === "tty") lt.output = [...notes, message].join("\n");
        else this.o.emit({ event: "progress", id, message });
      },
      // Progress lines go when the task is done; its notes stay.
      done: () => {
        if (lt && this.o.mode === "tty") lt.output = notes.join("\n");
      },
    };
  }

  private emitTask(
    step: { id: string },
    title: string,
    state: TaskState,
    t0: number,
    extra: Partial<RunEvent> = {},
  ) {
    this.o.emit({
      event: "task",
      id: step.id,
      title,
      state,
      durationMs: Math.round(performance.now() - t0),
      ...extra,
    } as RunEvent);
  }

  private async execTask(step: TaskStep, lt: Wrapper): Promise<void> {
    const { def, params } = step;
    const title = def.title(params);
    const t0 = performance.now();
    const signal = this.controller.signal;
    if (signal.aborted) {
      this.counts.cancelled++;
      this.emitTask(step, title, "cancelled", t0);
      throw signal.reason;
    }
    this.emitTask(step, title, "running", t0);
    const ctx = this.context(step.id, lt, this.o.host, signal);
    try {
      const reason = def.skip ? await def.skip(ctx, params) : undefined;
      if (reason !== undefined) {
        this.counts.skipped++;
        lt.title = `${title} [skipped: ${reason}]`;
        this.emitTask(step, title, "skipped", t0, { reason });
        this.injectFault(step.id);
        return;
      }
      if (holds(await def.check(ctx, params))) {
        this.counts.unchanged++;
        lt.title = `${title} [${def.guard ? "ok" : "unchanged"}]`;
        this.emitTask(step, title, "ok", t0);
        // A fault may be injected after a task with nothing to do, too: every listed id can fail.
        this.injectFault(step.id);
        return;
      }
      if (this.o.dryRun) return await this.dryRunTask(step, lt, title, t0);
      const intent = def.prepare ? await def.prepare(ctx, params) : undefined;
      const seq = def.rollback
        ? await this.journal.begin({
            id: step.id,
            kind: def.kind,
            ...(step.scope !== undefined ? { scope: step.scope } : {}),
            family: familyOf(def),
            ...(def.kept ? { kept: true } : {}),
            runId: this.runId,
            params,
            intent,
          })
        : undefined;
      const result = await def.run(ctx, params, intent);
      if (seq !== undefined) await this.journal.complete(seq, result ?? null);
      this.counts.changed++;
      this.emitTask(step, title, "changed", t0);
      this.injectFault(step.id);
    } catch (e) {
      const cancelled = signal.aborted && this.firstFailure !== undefined && !(e instanceof InjectedFault);
      if (cancelled || (this.interrupted && !this.firstFailure)) {
        this.counts.cancelled++;
        this.emitTask(step, title, "cancelled", t0);
        this.firstFailure ??= { id: step.id, error: e };
      } else {
        this.counts.failed++;
        this.emitTask(step, title, "failed", t0, { error: errorMessage(e) });
        this.firstFailure ??= { id: step.id, error: e };
        this.controller.abort(e);
      }
      throw e;
    } finally {
      ctx.done();
    }
  }

  private async dryRunTask(step: TaskStep, lt: Wrapper, title: string, t0: number): Promise<void> {
    const commands: string[] = [];
    const ctx = this.context(
      step.id,
      lt,
      dryHost(this.o.host, (c) => commands.push(c)),
      this.controller.signal,
    );
    try {
      const intent = step.def.prepare ? await step.def.prepare(ctx, step.params) : undefined;
      await step.def.run(ctx, step.params, intent);
    } catch (e) {
      commands.push(`(preview stops here: ${errorMessage(e)})`);
    }
    this.counts.wouldChange++;
    lt.title = `${title} [would change]`;
    lt.output = commands.join("\n");
    this.emitTask(step, title, "skipped", t0, { commands });
  }

  /** Listr tasks undoing entries newest first; a failing one is reported and kept, the rest still run. */
  private undoTasks(entries: readonly JournalEntry[]): { tasks: AnyListrTask[]; failures(): number } {
    let failures = 0;
    const tasks: AnyListrTask[] = [...entries].reverse().map((e) => ({
      title: this.undoTitle(e),
      task: async (_c, lt) => {
        try {
          await this.undoEntry(e, lt);
        } catch (err) {
          failures++;
          throw err;
        }
      },
    }));
    return { tasks, failures: () => failures };
  }

  /** Roll back this run's entries (after a failure or an interrupt), shown as a list of its own. */
  private async rollback(entries: readonly JournalEntry[], title: string): Promise<void> {
    if (entries.length === 0) return;
    this.o.emit({ event: "group", id: "rollback", title });
    const { tasks } = this.undoTasks(entries);
    const parent: AnyListrTask = {
      title,
      task: (_c, lt) => lt.newListr(tasks, { concurrent: false, exitOnError: false }),
    };
    await new Listr([parent], {
      ...this.listrOptions(),
      concurrent: false,
      exitOnError: false,
      registerSignalListeners: false,
    })
      .run()
      .catch(() => undefined);
  }

  private undoTitle(e: JournalEntry): string {
    const def = this.o.registry.get(e.kind);
    if (!def) return `Undoing ${e.id}`;
    return def.rollbackTitle ? def.rollbackTitle(e.params) : `Undoing: ${def.title(e.params)}`;
  }

  private async undoEntry(e: JournalEntry, lt: Wrapper): Promise<void> {
    const t0 = performance.now();
    const title = this.undoTitle(e);
    const def = this.o.registry.get(e.kind);
    // Rollback must run even after an interrupt: it gets a signal of its own.
    const ctx = this.context(e.id, lt, this.o.host, new AbortController().signal);
    try {
      if (!def?.rollback) throw new Error(`no rollback is known for task kind "${e.kind}"`);
      await def.rollback(ctx, {
        params: e.params,
        intent: e.intent,
        result: e.state === "done" ? e.result : undefined,
      });
      await this.journal.remove(e.seq);
      this.counts.rolledBack++;
      this.emitTask(e, title, "rolled-back", t0);
    } catch (err) {
      this.counts.rollbackFailed++;
      this.emitTask(e, title, "rollback-failed", t0, { error: errorMessage(err) });
      throw err;
    }
  }

  // Entries of different lanes (e.g. containers) are undone concurrently; within a lane, and for
  // entries without one, newest first.
  private undoLanes(
    step: UndoStep,
    entries: readonly JournalEntry[],
  ): { tasks: AnyListrTask[]; failures(): number } {
    if (!step.lane) return this.undoTasks(entries);
    const lanes = new Map<string, JournalEntry[]>();
    const rest: JournalEntry[] = [];
    for (const e of entries) {
      const key = step.lane(e);
      if (key === undefined) rest.push(e);
      else lanes.set(key, [...(lanes.get(key) ?? []), e]);
    }
    const parts = [...lanes].map(([key, es]) => ({ key, ...this.undoTasks(es) }));
    const tail = this.undoTasks(rest);
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

  /** APLSPAWN_FAIL_AFTER: fail right after the task `id` finished, changed or not. */
  private injectFault(id: string): void {
    if (this.failAfter?.test(id))
      throw new InjectedFault(`injected failure after ${id} (APLSPAWN_FAIL_AFTER=${this.o.failAfter})`);
  }

  /** The same for an undo step: it fails the run as an undo that failed does (cancel, roll back). */
  private injectUndoFault(step: UndoStep, t0: number): void {
    if (!this.failAfter?.test(step.id)) return;
    const e = new InjectedFault(
      `injected failure after ${step.id} (APLSPAWN_FAIL_AFTER=${this.o.failAfter})`,
    );
    this.counts.failed++;
    this.emitTask(step, step.title, "failed", t0, { error: e.message });
    this.firstFailure ??= { id: step.id, error: e };
    this.controller.abort(e);
  }

  private undoStep(step: UndoStep, lt: Wrapper) {
    const journal = this.journal.entries();
    const entries = journal.filter((e) => step.select(e, journal));
    const t0 = performance.now();
    if (entries.length === 0) {
      lt.title = `${step.title} [nothing to undo]`;
      this.emitTask(step, step.title, "ok", t0);
      this.counts.unchanged++;
      this.injectUndoFault(step, t0);
      return;
    }
    if (this.o.dryRun) {
      const commands = [...entries].reverse().map((e) => this.undoTitle(e));
      this.counts.wouldChange++;
      lt.title = `${step.title} [would change]`;
      lt.output = commands.join("\n");
      this.emitTask(step, step.title, "skipped", t0, { commands });
      return;
    }
    this.emitTask(step, step.title, "running", t0);
    const { tasks, failures } = this.undoLanes(step, entries);
    // Every entry is tried even when one fails; the untitled last task (hidden by listr2) then
    // fails the run, which stops the steps after this one.
    const finish: AnyListrTask = {
      task: () => {
        if (failures() === 0) {
          this.counts.changed++;
          this.emitTask(step, step.title, "changed", t0);
          this.injectUndoFault(step, t0);
          return;
        }
        const e = new Error(
          `${failures()} of ${entries.length} resources could not be undone; they stay in the journal, run again to retry`,
        );
        this.counts.failed++;
        this.emitTask(step, step.title, "failed", t0, { error: e.message });
        this.firstFailure ??= { id: step.id, error: e };
        this.controller.abort(e);
      },
    };
    return lt.newListr([...tasks, finish], { concurrent: false, exitOnError: false });
  }
}
