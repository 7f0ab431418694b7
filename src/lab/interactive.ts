// `aplspawn ssh` hands the terminal to the host's ssh client, which gives the remote side a pty of
// its own and relays it: stdio is inherited, which the Host's captured exec cannot do. Only for a
// host program that keeps the terminal on our side (never a process in a container: `exec` relays
// through a pty of the container's, src/lab/enter.ts). Report commands only, never tasks.
import { spawn } from "node:child_process";
import { constants } from "node:os";

/** Run a program on our terminal; resolves with its exit code. */
export function runInteractive(cmd: string, args: readonly string[]): Promise<number> {
  const child = spawn(cmd, args, { stdio: "inherit" });
  return new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 15) : 0)),
    );
  });
}
