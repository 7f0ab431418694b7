// Unmounting a mount of ours without ever going lazy: a busy mount is retried, then reported with
// the processes that hold it (a lazy unmount hides the problem rather than fixing it).
import { type HostContext, lastLines } from "./host.js";

/** Unmount `path` while `mounted()` holds; retry a busy mount, then fail naming who holds it. */
export async function unmountRetrying(
  ctx: HostContext,
  path: string,
  mounted: () => Promise<boolean>,
  attempts = 10,
): Promise<void> {
  const h = ctx.host;
  let last = "";
  for (let i = 0; i < attempts; i++) {
    if (!(await mounted())) return;
    const r = await h.exec("umount", [path], { signal: ctx.signal, allowFail: true });
    if (r.exitCode === 0) continue;
    if (!(await mounted())) return; // unmounted by someone else in the meantime: done
    last = lastLines(r.stderr, 1);
    if (!/busy/i.test(r.stderr)) throw new Error(`umount ${path} failed: ${last}`);
    await h.sleep(500, ctx.signal);
  }
  if (!(await mounted())) return;
  const f = (await h.which("fuser"))
    ? await h.exec("fuser", ["-vm", path], { allowFail: true, readOnly: true, signal: ctx.signal })
    : undefined;
  const holders = f ? lastLines(`${f.stdout}\n${f.stderr}`, 20) : "(install psmisc for fuser to list them)";
  throw new Error(`${path} stays busy after ${attempts} attempts (${last}); processes using it:\n${holders}`);
}
