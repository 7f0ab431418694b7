// A process that takes a lock many times over, from many async callers at once, and adds one to a
// counter file each time while holding it. Only acts when started with --aplspawn-lock-stress (the
// test runner loads every file under test/).
import { readFile, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { realHost } from "../../src/host/real-host.js";
import { LockedError } from "../../src/runner/errors.js";
import { acquireLock } from "../../src/runner/lock.js";

async function stress(lock: string, counter: string, times: number): Promise<void> {
  const host = realHost();
  let inside = 0;
  const once = async () => {
    for (;;) {
      try {
        const l = await acquireLock(host, lock, "stress");
        if (++inside > 1) throw new Error("two holders at once in one process");
        const v = Number(await readFile(counter, "utf8"));
        await sleep(1);
        await writeFile(counter, String(v + 1));
        inside--;
        await l.release();
        return;
      } catch (e) {
        if (!(e instanceof LockedError)) throw e;
        await sleep(2);
      }
    }
  };
  await Promise.all(Array.from({ length: times }, once));
}

if (process.argv[2] === "--aplspawn-lock-stress") {
  const [, , , lock, counter, times] = process.argv;
  stress(lock ?? "", counter ?? "", Number(times)).catch((e) => {
    process.stderr.write(`${e}\n`);
    process.exitCode = 1;
  });
}
