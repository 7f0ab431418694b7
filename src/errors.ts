// The few error classes the CLI's one top-level catch maps to exit codes.

/**
 * In a dry run, what a task would do next depends on what a change it would make gives back (the
 * device losetup picks): terraform's "known after apply". The preview says so and stops there.
 */
export class KnownAfterApply extends Error {
  override name = "KnownAfterApply";
}

/**
 * The base of an error class the top-level catch maps to `exitCode`; `name` names it in messages
 * and reports (`class XError extends exitsWith("XError", 1) {}`: still its own class for instanceof).
 */
const exitsWith = (name: string, exitCode: number) =>
  class extends Error {
    override name = name;
    readonly exitCode = exitCode;
  };

/** Bad command line or bad config: exit 2, nothing on the host was touched. */
export class UsageError extends exitsWith("UsageError", 2) {}

/** A task failed (after rollback): exit 1. `notes`: what the rollback kept, and where (shown after). */
export class TaskFailedError extends exitsWith("TaskFailedError", 1) {
  constructor(
    readonly taskId: string,
    cause: unknown,
    readonly rollbackFailures = 0,
    readonly notes: readonly string[] = [],
  ) {
    super(`Task ${taskId} failed: ${errorMessage(cause)}`, { cause });
  }
}

/** The run was interrupted by a signal: exit 130. */
export class InterruptedError extends exitsWith("InterruptedError", 130) {}

/** Another aplspawn process holds the lab: exit 1, names the holder. */
export class LockedError extends exitsWith("LockedError", 1) {}

/** The journal on disk cannot be trusted: exit 1, nothing is guessed or dropped. */
export class JournalError extends exitsWith("JournalError", 1) {}

/** An operation that failed for a reason the user can act on (exit 1). */
export class ExitError extends Error {
  override name = "ExitError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A bug in aplspawn itself: printed with its stack (exit 1). */
export class InternalError extends exitsWith("InternalError", 1) {}

/** The message of any thrown value. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
