// `aplspawn ssh` and `aplspawn exec` hand the terminal to another program (a shell, an editor):
// stdio is inherited, which the Host's captured exec cannot do. Report commands only, never tasks.
import { spawn } from "node:child_process";
import { constants } from "node:os";

/** A program started on our stdin/stdout/stderr: resolved once it runs, and with its exit code. */
export interface Interactive {
  started: Promise<void>;
  exited: Promise<number>;
}

/** Start a program on our terminal; env, when given, is its whole environment. */
export function startInteractive(
  cmd: string,
  args: readonly string[],
  env?: Record<string, string>,
): Interactive {
  const child = spawn(cmd, args, { stdio: "inherit", ...(env ? { env } : {}) });
  const started = new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("spawn", () => resolve());
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 15) : 0)),
    );
  });
  return { started, exited };
}

/** Run a program on our terminal; resolves with its exit code. */
export function runInteractive(cmd: string, args: readonly string[]): Promise<number> {
  return startInteractive(cmd, args).exited;
}
