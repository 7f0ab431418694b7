// What the runner tells the user: one event per task change, rendered as plain lines in the original
// tool's style, as JSON lines, or (on a terminal) left to listr2 with just the summary printed.

/** The states a task passes through, as reported. */
export type TaskState =
  | "running"
  | "ok" // check held: nothing to do
  | "changed"
  | "skipped" // (with its reason) the task does not apply
  | "would-change" // dry run: the check does not hold; `commands` says what would run
  | "failed"
  | "cancelled" // stopped because another task failed or a signal came
  | "rolled-back"
  | "rollback-failed";

/** A task event (`--json` prints these as they are). */
export interface TaskEvent {
  event: "task";
  id: string;
  title: string;
  state: TaskState;
  durationMs?: number;
  error?: string;
  /** Dry run: the commands the task would run. */
  commands?: string[];
  /** Why a task that does not apply was skipped. */
  reason?: string;
}

/** A note or progress line from a task, or a note from the runner itself. */
export interface InfoEvent {
  event: "info" | "progress" | "warning";
  id?: string;
  message: string;
}

/** The last event of a run. */
export interface SummaryEvent {
  event: "summary";
  workflow: string;
  ok: boolean;
  changed: number;
  unchanged: number;
  failed: number;
  cancelled: number;
  rolledBack: number;
  rollbackFailed: number;
  wouldChange: number;
  /** Tasks that did not apply (see TaskEvent.reason). */
  skipped: number;
  durationMs: number;
  error?: string;
  failedTask?: string;
}

export type RunEvent = TaskEvent | InfoEvent | SummaryEvent | { event: "group"; id: string; title: string };

/** Output modes: listr2's renderer on a terminal, plain lines elsewhere, or JSON lines. */
export type OutputMode = "tty" | "plain" | "json";

/** What `-q` keeps of a run: warnings, what failed, and the summary. */
export function shownWhenQuiet(e: RunEvent): boolean {
  return (
    e.event === "summary" ||
    e.event === "warning" ||
    (e.event === "task" && (e.state === "failed" || e.state === "rollback-failed"))
  );
}

/** Turns events into output lines (or nothing, where listr2 draws). */
export function renderEvent(mode: OutputMode, e: RunEvent): string | undefined {
  if (mode === "json") return JSON.stringify(e);
  if (e.event === "summary") return summaryLine(e);
  if (mode === "tty") return e.event === "warning" ? `‣ [ WARN ] ${e.message}` : undefined;
  switch (e.event) {
    case "group":
      return `‣ [ INFO ] ${e.title}`;
    case "info":
      return `‣ [ INFO ] ${e.message}`;
    case "progress":
      return `‣ [ .. ] ${e.message}`;
    case "warning":
      return `‣ [ WARN ] ${e.message}`;
    case "task":
      return taskLine(e);
  }
}

function taskLine(e: TaskEvent): string | undefined {
  switch (e.state) {
    case "running":
      return undefined;
    case "ok":
      return `‣ [ OK ] ${e.title} (unchanged)`;
    case "changed":
      return `‣ [ OK ] ${e.title}`;
    case "skipped":
      return `‣ [ SKIP ] ${e.title}${e.reason !== undefined ? `: ${e.reason}` : ""}`;
    case "would-change":
      return [`‣ [ DRY ] ${e.title}: would change`, ...(e.commands ?? []).map((c) => `      ${c}`)].join(
        "\n",
      );
    case "failed":
      return `‣ [ FAIL ] ${e.title}: ${e.error ?? ""}`;
    case "cancelled":
      return `‣ [ CANCELLED ] ${e.title}`;
    case "rolled-back":
      return `‣ [ UNDONE ] ${e.title}`;
    case "rollback-failed":
      return `‣ [ FAIL ] ${e.title}: ${e.error ?? ""}`;
  }
}

function summaryLine(s: SummaryEvent): string {
  const parts = [`${s.changed} changed`, `${s.unchanged} unchanged`];
  if (s.wouldChange) parts.push(`${s.wouldChange} would change`);
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  if (s.failed) parts.push(`${s.failed} failed`);
  if (s.rolledBack) parts.push(`${s.rolledBack} rolled back`);
  if (s.rollbackFailed) parts.push(`${s.rollbackFailed} rollback failed`);
  const head = s.ok ? "[ DONE ]" : "[ FAILED ]";
  return `‣ ${head} ${s.workflow}: ${parts.join(", ")} in ${(s.durationMs / 1000).toFixed(1)} s`;
}

// CSI/OSC escape sequences, then any other C0 or C1 control character but newline and tab.
const ESCAPES = new RegExp(
  `${String.fromCharCode(27)}(\\[[0-?]*[ -/]*[@-~]|\\][^${String.fromCharCode(7, 27)}]*(${String.fromCharCode(7)}|${String.fromCharCode(27)}\\\\)?)`,
  "g",
);
const CONTROLS = new RegExp(
  `[${String.fromCharCode(0)}-${String.fromCharCode(8)}${String.fromCharCode(11)}-${String.fromCharCode(31)}${String.fromCharCode(127)}-${String.fromCharCode(159)}]`,
  "g",
);

/**
 * Text safe to print on a terminal: escape sequences and control characters removed (a container's
 * log, process names and relayed output are the container's to forge: a title change, a cleared
 * screen or a fake prompt must not reach the user's terminal). Newlines and tabs stay.
 */
export function printable(text: string): string {
  return text.replace(ESCAPES, "").replace(CONTROLS, "");
}
