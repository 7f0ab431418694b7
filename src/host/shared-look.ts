// A look at the host (the systemd-nspawn processes, the loop devices) that a run's concurrent tasks
// share without any of them getting a stale answer: a caller shares a look only if it began after
// the caller asked (the one running is waited out, then one next look serves everyone who came
// meanwhile). Each answer is as live as a look of one's own, and 30 tasks asking at once cost a
// few looks. The state lives in the run's scope (ctx.memo), never in a module.

/** The looks of one kind a run has: the one running, and the one queued to begin after it. */
export interface Looks<T> {
  current?: Promise<T>;
  next?: Promise<T>;
}

/** A look begun after this call, shared with whoever else asks meanwhile (its starter's look() runs). */
export function freshLook<T>(s: Looks<T>, look: () => Promise<T>): Promise<T> {
  const start = (): Promise<T> => {
    const p: Promise<T> = look().finally(() => {
      if (s.current === p) s.current = undefined;
    });
    s.current = p;
    return p;
  };
  if (!s.current) return start();
  s.next ??= s.current
    .catch(() => undefined)
    .then(() => {
      s.next = undefined;
      return start();
    });
  return s.next;
}
