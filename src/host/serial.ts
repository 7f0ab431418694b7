// An in-process mutex: concurrent tasks of one run that share a resource take turns (other
// processes are kept out by the lab lock or a host lock).

/** Runs each fn after every earlier caller's fn has finished, failed or not. */
export type Serializer = <T>(fn: () => Promise<T>) => Promise<T>;

/** A new turn-taking queue. */
export function serializer(): Serializer {
  let chain: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
}
