// What the parts of one run share: its id, its cancel signal, the first failure, the tally of task
// outcomes, and how an outcome is reported (events, and the listr2 line on a terminal).
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { ListrDefaultRendererLogLevels, type ListrTask, type ListrTaskWrapper, PRESET_TIMER } from "listr2";
import { errorMessage, TaskFailedError } from "../errors.js";
import type { Host } from "../host/host.js";
import { runScope } from "../host/run-scope.js";
import { FramedRenderer } from "./framed-renderer.js";
import type { OutputMode, RunEvent, SummaryEvent, TaskState } from "./report.js";
import type { FailedRun, TaskContext } from "./task.js";

// biome-ignore lint/suspicious/noExplicitAny: the renderer is chosen at run time
export type AnyListrTask = ListrTask<unknown, any, any>;
// biome-ignore lint/suspicious/noExplicitAny: the renderer is chosen at run time
export type Wrapper = ListrTaskWrapper<unknown, any, any>;

// Every color listr2's default renderer puts on a line it draws, as the identity: its icons' by
// level, and the paused timer's (the only suffix we let it show).
const plain = (s?: string) => s ?? "";
const UNCOLORED = {
  color: Object.fromEntries(Object.values(ListrDefaultRendererLogLevels).map((k) => [k, plain])),
  pausedTimer: { ...PRESET_TIMER, format: () => plain },
};

/** How a run reports. */
export interface ReportOptions {
  mode: OutputMode;
  emit(e: RunEvent): void;
  /** -v: the output of long tools (debootstrap) too, off a terminal. */
  verbose?: boolean;
  lab?: string;
  /** false: the terminal's tree without colors (--no-color; NO_COLOR=1 listr2 reads itself). */
  color?: boolean;
}

/** The shared state of one run. */
export class RunState {
  readonly runId = `${new Date().toISOString()}-${randomBytes(3).toString("hex")}`;
  /** Aborted on the first failure or an interrupt: what still runs is cancelled. */
  readonly controller = new AbortController();
  firstFailure: { id: string; error: unknown } | undefined;
  interrupted = false;
  /** Lines the rollback of a failed run adds to its final error (FailedRun.note). */
  readonly notes = new Set<string>();
  readonly counts = {
    changed: 0,
    unchanged: 0,
    failed: 0,
    cancelled: 0,
    rolledBack: 0,
    rollbackFailed: 0,
    wouldChange: 0,
    skipped: 0,
  };
  /** What the run learns once and its mutexes (run-scope.ts): every context of the run shares it. */
  readonly scope = runScope();
  private readonly t0 = performance.now();

  constructor(private readonly o: ReportOptions) {
    // Every concurrent task's commands listen on this one signal (30 containers: hundreds).
    setMaxListeners(0, this.controller.signal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  emit(e: RunEvent): void {
    this.o.emit(e);
  }

  /** listr2's renderer: its default one on a terminal (at most 5 frames a second), else silent (events are printed instead). */
  listrOptions() {
    return this.o.mode === "tty"
      ? ({
          renderer: FramedRenderer,
          rendererOptions: {
            collapseSubtasks: false,
            collapseErrors: false,
            ...(this.o.color === false ? UNCOLORED : {}),
          },
        } as const)
      : ({ renderer: "silent" } as const);
  }

  /** Report a step's outcome. */
  emitTask(step: { id: string }, title: string, state: TaskState, t0: number, extra: Partial<RunEvent> = {}) {
    this.o.emit({
      event: "task",
      id: step.id,
      title,
      state,
      durationMs: Math.round(performance.now() - t0),
      ...extra,
    } as RunEvent);
  }

  /**
   * The one way a step fails the run: counted and reported as failed, remembered when it is the
   * first failure, and everything still running cancelled.
   */
  fail(step: { id: string }, title: string, t0: number, e: unknown): void {
    this.counts.failed++;
    this.emitTask(step, title, "failed", t0, { error: errorMessage(e) });
    this.firstFailure ??= { id: step.id, error: e };
    this.controller.abort(e);
  }

  /**
   * What a task gets: the host, a signal, the run's scope, and its notes and progress shown under
   * its line; and, in the rollback of a failed run, that run.
   */
  context(
    id: string,
    lt: Wrapper | undefined,
    host: Host,
    signal: AbortSignal,
    failedRun?: FailedRun,
  ): TaskContext & { done(): void } {
    const notes: string[] = [];
    const tty = this.o.mode === "tty";
    const t0 = performance.now();
    return {
      host,
      signal,
      ...this.scope,
      tty,
      runId: this.runId,
      ...(this.o.lab ? { lab: this.o.lab } : {}),
      ...(this.o.verbose ? { verbose: true } : {}),
      ...(failedRun ? { failedRun } : {}),
      info: (message) => {
        notes.push(message);
        if (lt) lt.output = notes.join("\n");
        this.o.emit({ event: "info", id, message });
      },
      progress: (message) => {
        if (lt && tty) lt.output = [...notes, message].join("\n");
        // Plain lines: a step done within two seconds prints no progress (JSON gets all of it).
        else if (this.o.mode === "json" || performance.now() - t0 >= 2000)
          this.o.emit({ event: "progress", id, message });
      },
      // Progress lines go when the task is done; its notes stay.
      done: () => {
        if (lt && tty) lt.output = notes.join("\n");
      },
    };
  }

  /** The failed run, for the rollback of its own changes. */
  failedRun(): FailedRun {
    return { id: this.runId, note: (line) => this.notes.add(line) };
  }

  /** The run's summary, emitted once at its end. */
  summary(workflow: string, error?: unknown): SummaryEvent {
    const s: SummaryEvent = {
      event: "summary",
      workflow,
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
}
