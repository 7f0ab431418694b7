// What one run learns and guards: facts about the host asked once per run (which iptables backend,
// whether machined answers, which binary is systemd-nspawn) and the in-process mutexes its
// concurrent tasks take turns on. The run owns it (the runner makes one per run; its dry-run
// previews and its rollback share it; a status is a run of its own), so it ends with the run and
// two runs in one process (tests, `aplspawn test --all`) share nothing. What is the process's,
// not a run's (the cgroups the process itself moves between: src/lab/cgroups.ts), is not here.
import type { Host, HostContext } from "./host.js";
import { type Serializer, serializer } from "./serial.js";

/** The name of a value a run keeps, typed: `runKey<Promise<Backend>>("iptables backend")`. */
export interface RunKey<T> {
  readonly name: string;
  /** Never set: carries T, so a key's users agree on its type. */
  readonly type?: T;
}

/** A new key; each key is its own slot (two keys of one name do not meet). */
export const runKey = <T>(name: string): RunKey<T> => ({ name });

/** The run's own memo and mutexes. */
export interface RunScope {
  /**
   * The run's value under key, made by make() the first time the run asks for it. A promise that
   * rejects is forgotten, so the next caller asks again.
   */
  memo<T>(key: RunKey<T>, make: () => NoInfer<T>): T;
  /** The run's turn-taking queue of that name (see serial.ts). */
  mutex(name: string): Serializer;
}

/** What everything that works in a run gets: the host, the run's cancel signal and its scope. */
export interface RunContext extends HostContext, RunScope {}

/** A new, empty scope. */
export function runScope(): RunScope {
  const values = new Map<RunKey<unknown>, unknown>();
  const mutexes = new Map<string, Serializer>();
  return {
    memo<T>(key: RunKey<T>, make: () => T): T {
      if (values.has(key)) return values.get(key) as T;
      const v = make();
      values.set(key, v);
      if (v instanceof Promise)
        v.catch(() => {
          if (values.get(key) === v) values.delete(key);
        });
      return v;
    },
    mutex(name) {
      let m = mutexes.get(name);
      if (!m) {
        m = serializer();
        mutexes.set(name, m);
      }
      return m;
    },
  };
}

/**
 * A context for a one-off look at the host outside a workflow (a report command, a status): a run
 * of its own, with a scope of its own.
 */
export const runContext = (host: Host, signal: AbortSignal = new AbortController().signal): RunContext => ({
  host,
  signal,
  ...runScope(),
});
