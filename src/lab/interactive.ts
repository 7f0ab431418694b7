// `aplspawn ssh` and `aplspawn exec` hand the terminal to another program (a shell, an editor):
// stdio is inherited, which the Host's captured exec cannot do. Report commands only, never tasks.
import { spawn } from "node:child_process";
import { constants } from "node:os";

/** Run a program on our stdin/stdout/stderr; resolves with its exit code. */
export function runInteractive(cmd: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: "inherit" });
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 15) : 0)),
    );
  });
}
