// The task model: an operation with check/run/rollback, and the steps a workflow is made of.
import type { RunContext } from "../host/run-scope.js";

/**
 * What a task gets while it checks, runs or rolls back: the host, the run's signal and the run's
 * scope (what the run learned of the host once, its mutexes: run-scope.ts).
 */
export interface TaskContext extends RunContext {
  /** True when output goes to a terminal (progress bars make sense). */
  tty: boolean;
  /** A note shown under the task ("[ INFO ]" off a terminal). */
  info(message: string): void;
  /** A transient progress line (a bar on a terminal; callers rate-limit it off one). */
  progress(line: string): void;
  /**
   * Set only while a failed run rolls back what it made (not in a teardown, nor after an interrupt):
   * a rollback may then keep what explains the failure, and say where.
   */
  failedRun?: FailedRun;
  /**
   * Set in a dry run: the host records changes and makes none, so what a change gives back is
   * empty; a task that needs it throws KnownAfterApply rather than retry or fail on it.
   */
  dryRun?: boolean;
  /** -v: show what long tools (debootstrap) print, off a terminal too. */
  verbose?: boolean;
  /** The lab and the run this task runs in (debug lines name them: src/image/loop-debug.ts). */
  lab?: string;
  runId?: string;
  /**
   * Set only while undoing: the entries the same undo takes after this one, in order (older ones
   * of its lane). A rollback may leave to one of them what that one undoes anyway (a rule in a
   * chain deleted after it); should that one fail or never run, it stays in the journal, and so
   * does what it undoes.
   */
  undoneAfter?: readonly UndoneEntry[];
}

/** What a rollback sees of an entry undone after it (TaskContext.undoneAfter): unchecked data. */
export interface UndoneEntry {
  kind: string;
  params: unknown;
  intent?: unknown;
}

/**
 * A place undoing may act on (undo-scope.ts): a string is that path and everything under it;
 * `{ only }` that path alone; a RegExp, the whole paths it matches.
 */
export type PathRule = string | { only: string } | RegExp;

/** The failed run a rollback undoes (TaskContext.failedRun). */
export interface FailedRun {
  /** The run's id (its start time first: ids sort by age). */
  id: string;
  /** Add a line to the run's final error; the same line added by several rollbacks is shown once. */
  note(line: string): void;
}

/** What rollback gets back from the journal: enough to undo exactly what was created. */
export interface UndoRecord<P, I, R> {
  params: P;
  /** From prepare(), journaled before run started. */
  intent: I | undefined;
  /** From run(); undefined when run never finished (crash, failure): rollback must use the live host. */
  result: R | undefined;
}

/** One thing a shape found wrong with a value: where (the keys leading to it) and what. */
export interface ShapeIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/**
 * A check of a value's shape that yields it typed (a zod schema is one): all the runner needs to
 * trust a journaled value, without depending on zod itself.
 */
export interface Shape<T> {
  safeParse(
    data: unknown,
  ): { success: true; data: T } | { success: false; error: { readonly issues: readonly ShapeIssue[] } };
}

/** The shapes of what a kind journals: its params, and its intent and result where it has them. */
export interface JournaledShapes<P, I = unknown, R = unknown> {
  params: Shape<P>;
  intent?: Shape<I>;
  result?: Shape<R>;
}

// A kind that has an intent (or a result) declares its shape; one without (void, undefined, null)
// need not.
type ShapeOf<K extends "intent" | "result", T> = [T] extends [null]
  ? { [k in K]?: Shape<T> }
  : undefined extends T
    ? { [k in K]?: Shape<T> }
    : { [k in K]: Shape<T> };

/**
 * What check() finds: true or false, or the same with a word on it (why the state does not hold;
 * what was found when it does), which `aplspawn status` shows and a failing guard reports.
 */
export type Verdict = boolean | { ok: boolean; detail?: string };

/** A verdict that the state does not hold, and why. */
export const unmet = (why: string): Verdict => ({ ok: false, detail: why });

/** A verdict that the state holds, with what was found. */
export const met = (detail: string): Verdict => ({ ok: true, detail });

/** Whether a verdict says the state holds. */
export const holds = (v: Verdict): boolean => (typeof v === "object" ? v.ok : v);

/** The word on a verdict, if any. */
export const detailOf = (v: Verdict): string | undefined => (typeof v === "object" ? v.detail : undefined);

/**
 * One kind of host operation. `params` come from the config and are journaled, so rollback can
 * work from the journal alone, without the config.
 */
export interface TaskDef<P = unknown, R = unknown, I = unknown> {
  /** Stable kind name, e.g. `net.bridge`: the journal refers to rollbacks by it. */
  kind: string;
  title(params: P): string;
  /**
   * Why the task does not apply to this run (a feature turned off, a tool not installed), or
   * undefined when it does: a skipped task is reported with its reason and neither checked nor run.
   */
  skip?(ctx: TaskContext, params: P): Promise<string | undefined>;
  /** Does the desired state already hold on the live host? Reads only; may say why it does not. */
  check(ctx: RunContext, params: P): Promise<Verdict>;
  /** Reads what run will need to remember (e.g. a sysctl's old value); journaled before run. */
  prepare?(ctx: TaskContext, params: P): Promise<I>;
  /** Make the state hold; return what rollback needs. */
  run(ctx: TaskContext, params: P, intent: I): Promise<R>;
  /**
   * Undo what run created; must be idempotent and cope with `result` undefined. It gets only a
   * record that passed the kind's `journaled` shapes.
   */
  rollback?(ctx: TaskContext, rec: UndoRecord<P, I, R>): Promise<void>;
  /**
   * What the journal holds of this kind, checked before rollback acts on an entry (a journal may be
   * from an older aplspawn, or edited by hand). Required of every kind with a rollback.
   */
  journaled?: { params: Shape<P> } & ShapeOf<"intent", I> & ShapeOf<"result", R>;
  /**
   * Places outside the lab's directories that rollback may act on, taken from the entry itself
   * (undo-scope.ts): only for a kind whose rollback makes sure on its own that what it finds there
   * is its (the inventory: a file that still starts with aplspawn's mark).
   */
  undoPaths?(rec: UndoRecord<P, I, R>): readonly PathRule[];
  /** Title shown while rolling back; defaults to "Undoing: <title>". */
  rollbackTitle?(params: P): string;
  /** Which family the kind belongs to (journaled with each entry); defaults to the kind's first word. */
  family?: string;
  /** What run makes is lasting state: an ordinary teardown keeps it, a purge removes it (journaled). */
  kept?: boolean;
  /**
   * The line `aplspawn status` shows for this check (in the original tool's words) and what it looks
   * at; a kind without one is not part of status.
   */
  status?(params: P): { name: string; target: string };
  /** A guard changes nothing: it holds, or its run fails the workflow (see defineGuard). */
  guard?: boolean;
}

/** A kind's family: declared, or the first word of its kind ("net" for `net.bridge`). */
export const familyOf = (def: { kind: string; family?: string }): string =>
  def.family ?? def.kind.split(".")[0] ?? def.kind;

/** The type a shape yields. */
export type Shaped<S> = S extends Shape<infer T> ? T : never;

// biome-ignore lint/suspicious/noExplicitAny: the bound of any kind's shapes
type AnyShapes = { params: Shape<any>; intent?: Shape<any>; result?: Shape<any> };

/** What a kind's shapes say of one of its values: the shape's type, or `absent` when it has none. */
type ShapedOr<J, K extends "intent" | "result", Absent> = J extends { [k in K]: Shape<infer T> } ? T : Absent;

/** The task kind whose params, intent and result are the types of its `journaled` shapes. */
export type JournaledTaskDef<J extends AnyShapes> = TaskDef<
  Shaped<J["params"]>,
  ShapedOr<J, "result", null>,
  ShapedOr<J, "intent", void>
>;

/**
 * Declare a task kind (typed helper; returns its argument). A kind that journals states its shapes,
 * and its params, intent and result are their types (a kind without a result shape returns null);
 * a kind with a rollback must journal (a kind without `journaled` has no rollback: a type error).
 * A kind that journals nothing names its params' type: `defineTask<P>({ … })`.
 */
export function defineTask<J extends AnyShapes>(
  def: NoInfer<JournaledTaskDef<J>> & { journaled: J },
): JournaledTaskDef<J>;
export function defineTask<P, R = void, I = void>(
  def: TaskDef<P, R, I> & { journaled?: undefined; rollback?: undefined },
): TaskDef<P, R, I>;
export function defineTask(def: AnyTaskDef): AnyTaskDef {
  return def;
}

/**
 * Declare a guard: a condition that must hold before a workflow goes on (root, programs, a bridge
 * with no container on it). It changes nothing and has no rollback: when its check does not hold,
 * the workflow fails with the check's reason.
 */
export function defineGuard<P>(g: {
  kind: string;
  title(params: P): string;
  check(ctx: RunContext, params: P): Promise<Verdict>;
}): TaskDef<P, null> {
  return {
    ...g,
    guard: true,
    async run(ctx, params) {
      const v = await g.check(ctx, params);
      if (!holds(v)) throw new Error(detailOf(v) ?? `${g.title(params)}: does not hold`);
      return null;
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds task kinds of every parameter type
export type AnyTaskDef = TaskDef<any, any, any>;

/** A task instance in a workflow. */
export interface TaskStep {
  type: "task";
  /** Unique within a workflow, e.g. `container.overlay[aplspawn10]`. */
  id: string;
  def: AnyTaskDef;
  params: unknown;
  /** What the resource belongs to within the lab (journaled), e.g. a container's name. */
  scope?: string;
}

/** Steps run one after another, or concurrently (bounded) when `concurrency` > 1. */
export interface GroupStep {
  type: "group";
  id: string;
  title: string;
  steps: Step[];
  concurrency?: number;
  /** On a terminal: once its steps are done, shown as its one line (a failed one stays open). */
  collapse?: boolean;
  /** On a terminal: the title counts the groups in it done so far, "(k/N <tally>)". */
  tally?: string;
}

/** What an undo step's selection sees of a journal entry (scope, family, kept: absent in old journals). */
export interface JournalRef {
  id: string;
  kind: string;
  scope?: string;
  family?: string;
  kept?: boolean;
}

/** Undo journaled resources (of any earlier run) that `select` picks, newest first. */
export interface UndoStep {
  type: "undo";
  id: string;
  title: string;
  /**
   * `journal`: every entry left when the step starts (after the steps before it), for a selection
   * that depends on what else is left (e.g. a lab-wide hold, once no container's entry is).
   */
  select(entry: JournalRef, journal?: readonly JournalRef[]): boolean;
  /** Entries in different lanes (e.g. one per container) are undone concurrently. */
  lane?(entry: JournalRef): string | undefined;
  /** Lanes undone at once (default 1). */
  concurrency?: number;
}

export type Step = TaskStep | GroupStep | UndoStep;

/** A workflow instance: a named list of steps. */
export interface Workflow {
  name: string;
  steps: Step[];
}

/** Build a task step; `scope` says what it belongs to within the lab (a container's name). */
export function task<P>(
  def: TaskDef<P, unknown, unknown> | AnyTaskDef,
  id: string,
  params: P,
  scope?: string,
): TaskStep {
  return { type: "task", id, def, params, ...(scope !== undefined ? { scope } : {}) };
}

/** Build a group step. */
export function group(
  id: string,
  title: string,
  steps: Step[],
  concurrency?: number,
  show: Pick<GroupStep, "collapse" | "tally"> = {},
): GroupStep {
  return { type: "group", id, title, steps, concurrency, ...show };
}

/** Build an undo step; `lanes` lets independent entries (one lane each) be undone concurrently. */
export function undo(
  id: string,
  title: string,
  select: UndoStep["select"],
  lanes?: { lane: NonNullable<UndoStep["lane"]>; concurrency: number },
): UndoStep {
  return { type: "undo", id, title, select, ...lanes };
}

/** Every task id a workflow would run, in order (for --list-tasks and fault injection). */
export function listTaskIds(steps: readonly Step[]): string[] {
  return steps.flatMap((s) =>
    s.type === "task" ? [s.id] : s.type === "group" ? listTaskIds(s.steps) : [s.id],
  );
}

/** The task steps of a workflow, in order, groups flattened. */
export function taskSteps(steps: readonly Step[]): TaskStep[] {
  return steps.flatMap((s) => (s.type === "task" ? [s] : s.type === "group" ? taskSteps(s.steps) : []));
}

/**
 * Undo one thing that may also vanish on its own between a rollback's look and its act (an
 * autoclear loop device the kernel frees, a mount gone with its namespace, a link deleted by hand):
 * run `act`; when it fails, ask `ours()` again, and if what it undoes is no longer there (as ours),
 * the undo is done. A failure while it is still there is a real one and is rethrown.
 */
export async function undoUnlessGone(
  act: () => Promise<unknown>,
  ours: () => Promise<boolean>,
): Promise<void> {
  try {
    await act();
  } catch (e) {
    if (await ours().catch(() => true)) throw e;
  }
}
