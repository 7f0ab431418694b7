// Ready means reachable the way Ansible will reach it: sshd answers, the host key matches the one
// pinned in known_hosts (StrictHostKeyChecking=yes), the lab key logs the user in, and sudo works.

import { KnownAfterApply } from "../../src/errors.js";
import { CommandError, type HostContext, lastLines } from "../../src/host/host.js";
import { poll } from "../../src/host/poll.js";
import { isAlive } from "../../src/host/proc.js";
import { theNspawn } from "../../src/lab/nspawn-procs.js";
import { type SshTarget, sshBatchArgs } from "../../src/lab/ssh.js";
import { defineTask } from "../../src/runner/task.js";
import { logTail } from "./nspawn.js";

/** Journaled parameters (nothing to undo: this task only waits). */
export interface ReadyParams extends SshTarget {
  name: string;
  merged: string;
  logFile: string;
  timeoutMs: number;
}

async function trySsh(ctx: HostContext, p: ReadyParams): Promise<{ ok: boolean; error: string }> {
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
    if (!(await theNspawn(ctx, p.name, p.merged))) return false;
    // A container just started has nothing on port 22 yet: known without starting ssh.
    if (!(await ctx.host.canConnect(p.ip, 22, 300, ctx.signal))) return false;
    return (await trySsh(ctx, p)).ok;
  },
  async run(ctx, p) {
    // A preview starts no container: whether its sshd answers is known once it has booted.
    if (ctx.dryRun) throw new KnownAfterApply("whether sshd answers, once the container has booted");
    let last = "";
    let listening = false;
    // Found once; then its PID is watched (scanning /proc each round costs much with many containers).
    const nspawn = await theNspawn(ctx, p.name, p.merged);
    const answered = await poll(
      ctx.host,
      { timeoutMs: p.timeoutMs, everyMs: () => (listening ? 250 : 100), signal: ctx.signal },
      async () => {
        if (!nspawn || !(await isAlive(ctx.host, nspawn.pid)))
          throw new Error(
            `container ${p.name} stopped before sshd answered; ${await logTail(ctx, p.logFile)}`,
          );
        // A TCP connect costs next to nothing; an ssh attempt costs a process and a key exchange on
        // both sides (with 50 containers booting, polling with ssh alone slowed the boots): ssh only
        // once sshd listens, then again until the login and sudo work (logins open late in boot).
        listening = await ctx.host.canConnect(p.ip, 22, 300, ctx.signal);
        if (!listening) {
          last = "nothing listens on port 22 yet";
          return undefined;
        }
        const r = await trySsh(ctx, p);
        last = r.error;
        return r.ok ? true : undefined;
      },
    );
    if (answered) return null;
    throw new Error(
      `container ${p.name} (${p.ip}) did not answer over ssh within ${p.timeoutMs / 1000} s (last error: ${last}); ${await logTail(ctx, p.logFile)}`,
    );
  },
});
