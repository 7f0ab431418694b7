// Runs a workflow: checks, runs, journals and reports each task, under the lab's lock; on a failure
// or an interrupt it rolls back what this run made (undo.ts). It knows nothing of bridges or
// containers: it drives any TaskDef. Signals and exit codes are the CLI's.
import { join } from "node:path";
import { Listr } from "listr2";
import { ExitError, errorMessage, InterruptedError, KnownAfterApply, TaskFailedError } from "../errors.js";
import { dryHost } from "../host/dry-host.js";
import type { Host } from "../host/host.js";
import { acquireLock } from "../host/lock.js";
import { replaceableBy } from "../host/trusted-path.js";
import { FaultPlan, InjectedFault } from "./faults.js";
import { Journal, journalPath } from "./journal.js";
import type { OutputMode, RunEvent, SummaryEvent } from "./report.js";
import { type AnyListrTask, RunState, type Wrapper } from "./run-state.js";
import {
  type AnyTaskDef,
  familyOf,
  type GroupStep,
  holds,
  type Step,
  type TaskStep,
  type Workflow,
} from "./task.js";
import { Undo } from "./undo.js";
import type { UndoScope } from "./undo-scope.js";

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
  /** -v: the output of long tools (debootstrap) too, off a terminal. */
  verbose?: boolean;
  /** false: no colors on a terminal (--no-color). */
  color?: boolean;
  /** Glob of task ids: fail right after such a task's run succeeded (fault injection). */
  failAfter?: string;
  /** Shown to a second process that finds the lab locked. */
  command: string;
  /** Where undoing a journal entry may act on paths (the lab's places: undo-scope.ts). */
  undoScope?: UndoScope;
  /**
   * Aborting this interrupts the run: what runs is cancelled and this run's changes are rolled
   * back (the CLI aborts it on the first SIGINT, SIGTERM or SIGHUP; signals are the CLI's, not the runner's).
   */
  interrupt?: AbortSignal;
}

/** Run a workflow to the end; on failure roll back this run's changes and throw. */
export async function runWorkflow(wf: Workflow, opts: RunOptions): Promise<SummaryEvent> {
  return new Run(wf, opts).start();
}

class Run {
  private readonly state: RunState;
  private readonly faults: FaultPlan;
  private readonly inflight = new Set<Promise<unknown>>();
  private journal!: Journal;
  private undo!: Undo;

  constructor(
    private readonly wf: Workflow,
    private readonly o: RunOptions,
  ) {
    this.state = new RunState(o);
    this.faults = new FaultPlan(o.failAfter);
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
    const stopListening = this.listenForInterrupt();
    try {
      this.journal = await Journal.open(host, journalPath(labDir), this.o.lab, !this.o.dryRun);
      this.undo = new Undo({
        host,
        registry: this.o.registry,
        journal: this.journal,
        state: this.state,
        faults: this.faults,
        dryRun: this.o.dryRun === true,
        ...(this.o.undoScope ? { scope: this.o.undoScope } : {}),
      });
      for (const w of this.journal.warnings) this.o.emit({ event: "warning", message: w });
      const stale = this.journal.entries().filter((e) => e.state === "running");
      if (stale.length > 0)
        this.o.emit({
          event: "warning",
          message: `an earlier run stopped in the middle of ${stale.map((e) => e.id).join(", ")}; continuing from the live state`,
        });
      await this.execute();
      return this.state.summary(this.wf.name);
    } catch (e) {
      this.state.summary(this.wf.name, e);
      throw e;
    } finally {
      stopListening();
      await lock?.release();
    }
  }

  // The CLI aborts `interrupt` on a signal: the run stops what runs and rolls back.
  private listenForInterrupt(): () => void {
    const onInterrupt = () => {
      this.state.interrupted = true;
      this.o.emit({
        event: "warning",
        message: "interrupted: stopping and rolling back (interrupt again to exit at once)",
      });
      this.state.controller.abort(new InterruptedError("Interrupted"));
    };
    const i = this.o.interrupt;
    if (i?.aborted) onInterrupt();
    else i?.addEventListener("abort", onInterrupt, { once: true });
    return () => i?.removeEventListener("abort", onInterrupt);
  }

  private async execute(): Promise<void> {
    const { state } = this;
    const list = new Listr(
      this.wf.steps.map((s) => this.toListr(s)),
      {
        ...state.listrOptions(),
        concurrent: false,
        exitOnError: true,
        registerSignalListeners: false,
      },
    );
    try {
      await list.run();
    } catch (e) {
      state.firstFailure ??= { id: this.wf.name, error: e };
    }
    // Let every task that is still running settle before anything is undone.
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    if (!state.firstFailure && !state.interrupted) return;
    if (!this.o.noRollback && !this.o.dryRun)
      await this.undo.rollback(
        this.journal.entries().filter((e) => e.runId === state.runId),
        "Rolling back this run",
        // A failure, not an interrupt: its rollback may keep what explains it (and say where).
        state.interrupted ? undefined : state.failedRun(),
      );
    if (state.interrupted) throw new InterruptedError("Interrupted");
    const f = state.firstFailure!;
    throw new TaskFailedError(f.id, f.error, state.counts.rollbackFailed, [...state.notes]);
  }

  private toListr(step: Step, onDone?: () => void): AnyListrTask {
    switch (step.type) {
      case "task":
        return {
          title: step.def.title(step.params),
          task: (_c, lt) => this.track(this.execTask(step, lt)),
          // A task's notes (sizes, addresses) stay under it on a terminal once it is done.
          rendererOptions: { persistentOutput: true },
        };
      case "group":
        return { title: step.title, task: (_c, lt) => this.group(step, lt, onDone) };
      case "undo":
        return {
          title: step.title,
          task: (_c, lt) => this.undo.step(step, lt),
          // A dry run's list of what it would undo stays on a terminal.
          rendererOptions: { persistentOutput: true },
        };
    }
  }

  /** A group's steps as a listr of their own; onDone runs once they all succeeded. */
  private group(step: GroupStep, lt: Wrapper, onDone?: () => void) {
    this.o.emit({ event: "group", id: step.id, title: step.title });
    const c = step.concurrency ?? 1;
    // "(k/N ready)": each group in it counts itself done.
    let done = 0;
    const inner = step.steps.filter((s) => s.type === "group").length;
    const tally = step.tally
      ? () => {
          done++;
          lt.title = `${step.title} (${done}/${inner} ${step.tally})`;
        }
      : undefined;
    const tasks = step.steps.map((s) => this.toListr(s, tally));
    // An untitled last task (listr2 shows none) runs once every step before it succeeded.
    if (onDone && c <= 1) tasks.push({ task: () => onDone() });
    return lt.newListr(tasks, {
      concurrent: c > 1 ? c : false,
      exitOnError: true,
      ...(step.collapse ? { rendererOptions: { collapseSubtasks: true } } : {}),
    });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  /** APLSPAWN_FAIL_AFTER: fail right after the task `id` finished, changed or not. */
  private injectFault(id: string): void {
    const f = this.faults.after(id);
    if (f) throw f;
  }

  private async execTask(step: TaskStep, lt: Wrapper): Promise<void> {
    const { state } = this;
    const { def, params } = step;
    const title = def.title(params);
    const t0 = performance.now();
    const signal = state.signal;
    if (signal.aborted) {
      state.counts.cancelled++;
      state.emitTask(step, title, "cancelled", t0);
      throw signal.reason;
    }
    state.emitTask(step, title, "running", t0);
    const ctx = state.context(step.id, lt, this.o.host, signal);
    try {
      const reason = def.skip ? await def.skip(ctx, params) : undefined;
      if (reason !== undefined) {
        state.counts.skipped++;
        lt.title = `${title} [skipped: ${reason}]`;
        state.emitTask(step, title, "skipped", t0, { reason });
        this.injectFault(step.id);
        return;
      }
      let checked: Awaited<ReturnType<typeof def.check>>;
      try {
        checked = await def.check(ctx, params);
      } catch (e) {
        // A preview's check may need what an earlier step would make (the container's root that
        // its overlay mount would give): known only after apply, like terraform's unknown values.
        if (this.o.dryRun && state.counts.wouldChange > 0)
          return await this.dryRunTask(step, lt, title, t0, e);
        throw e;
      }
      if (holds(checked)) {
        state.counts.unchanged++;
        lt.title = `${title} [${def.guard ? "ok" : "unchanged"}]`;
        state.emitTask(step, title, "ok", t0);
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
            runId: state.runId,
            params,
            intent,
          })
        : undefined;
      const result = await def.run(ctx, params, intent);
      if (seq !== undefined) await this.journal.complete(seq, result ?? null);
      state.counts.changed++;
      state.emitTask(step, title, "changed", t0);
      this.injectFault(step.id);
    } catch (e) {
      const cancelled = signal.aborted && state.firstFailure !== undefined && !(e instanceof InjectedFault);
      if (cancelled || (state.interrupted && !state.firstFailure)) {
        state.counts.cancelled++;
        state.emitTask(step, title, "cancelled", t0);
        state.firstFailure ??= { id: step.id, error: e };
      } else state.fail(step, title, t0, e);
      throw e;
    } finally {
      ctx.done();
    }
  }

  /** A dry run's change: its commands, recorded; checkError: its check could not run (see execTask). */
  private async dryRunTask(
    step: TaskStep,
    lt: Wrapper,
    title: string,
    t0: number,
    checkError?: unknown,
  ): Promise<void> {
    const commands: string[] = [];
    const ctx = this.state.context(
      step.id,
      lt,
      dryHost(this.o.host, (c) => {
        // A command tried again and again (a retry loop) is shown once.
        if (commands.at(-1) !== c) commands.push(c);
      }),
      this.state.signal,
    );
    ctx.dryRun = true;
    const before = this.state.counts.wouldChange;
    try {
      const intent = step.def.prepare ? await step.def.prepare(ctx, step.params) : undefined;
      await step.def.run(ctx, step.params, intent);
    } catch (e) {
      // What an earlier step would make is not there in a preview: what fails on that is known
      // only after apply, not an error of the config or the host.
      if (e instanceof KnownAfterApply) commands.push(`(known after apply: ${e.message})`);
      else if (before > 0 || checkError !== undefined)
        commands.push(
          `(known after apply: it needs what the steps before would make; now: ${errorMessage(e)})`,
        );
      else commands.push(`(preview stops here: ${errorMessage(e)})`);
    }
    this.state.counts.wouldChange++;
    lt.title = `${title} [would change]`;
    lt.output = commands.join("\n");
    this.state.emitTask(step, title, "would-change", t0, { commands });
  }
}
