// Ready means reachable the way Ansible will reach it: sshd answers, the host key matches the one
// pinned in known_hosts (StrictHostKeyChecking=yes), the lab key logs the user in, and sudo works.
import { CommandError, lastLines } from "../../src/host/host.js";
import { isAlive } from "../../src/host/proc.js";
import { findNspawn } from "../../src/lab/nspawn-procs.js";
import { type SshTarget, sshBatchArgs } from "../../src/lab/ssh.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";
import { logTail } from "./nspawn.js";

/** Journaled parameters (nothing to undo: this task only waits). */
export interface ReadyParams extends SshTarget {
  name: string;
  merged: string;
  logFile: string;
  timeoutMs: number;
}

async function trySsh(ctx: TaskContext, p: ReadyParams): Promise<{ ok: boolean; error: string }> {
  try {
    const r = await ctx.host.exec("ssh", sshBatchArgs(p, ["sudo", "-n", "true"], 2), {
      allowFail: true,
      readOnly: true,
      timeoutMs: 15_000,
      signal: ctx.signal,
    });
    return { ok: r.exitCode === 0, error: lastLines(r.stderr, 1) || `exit code ${r.exitCode}` };
  } catch (e) {
    // One slow attempt (sshd just started, 50 containers booting) is one failed attempt: the task's
    // own deadline decides. Cancellation still ends the wait.
    if (ctx.signal.aborted || !(e instanceof CommandError)) throw e;
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Waits until the container answers over ssh. */
export const containerReady = defineTask<ReadyParams, null>({
  kind: "container.ready",
  title: (p) => `Checking ssh connection to ${p.ip} (container ${p.name})`,
  async check(ctx, p) {
    if ((await findNspawn(ctx.host, p.name, p.merged)).length === 0) return false;
    return (await trySsh(ctx, p)).ok;
  },
  async run(ctx, p) {
    const deadline = Date.now() + p.timeoutMs;
    let last = "";
    // Found once; then its PID is watched (scanning /proc each round costs much with many containers).
    const nspawn = (await findNspawn(ctx.host, p.name, p.merged))[0];
    for (;;) {
      if (!nspawn || !(await isAlive(ctx.host, nspawn.pid)))
        throw new Error(`container ${p.name} stopped before sshd answered; ${await logTail(ctx, p.logFile)}`);
      // A TCP connect costs next to nothing; an ssh attempt costs a process and a key exchange on
      // both sides (with 50 containers booting, polling with ssh alone slowed the boots): ssh only
      // once sshd listens, then again until the login and sudo work (logins open late in boot).
      const listening = await ctx.host.canConnect(p.ip, 22, 300, ctx.signal);
      if (listening) {
        const r = await trySsh(ctx, p);
        if (r.ok) return null;
        last = r.error;
      } else last = "nothing listens on port 22 yet";
      if (Date.now() > deadline)
        throw new Error(
          `container ${p.name} (${p.ip}) did not answer over ssh within ${p.timeoutMs / 1000} s (last error: ${last}); ${await logTail(ctx, p.logFile)}`,
        );
      await ctx.host.sleep(listening ? 250 : 100, ctx.signal);
    }
  },
});
