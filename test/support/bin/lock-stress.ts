// A process that takes a lock many times over, from many async callers at once, and adds one to a
// counter file each time while holding it. Only acts when started with --aplspawn-lock-stress (the
// test runner loads every file under test/).
import { readFile, rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { LockedError } from "../../../src/errors.js";
import { acquireLock } from "../../../src/host/lock.js";
import { realHost } from "../../../src/host/real-host.js";

async function stress(lock: string, counter: string, times: number): Promise<void> {
  const host = realHost();
  let inside = 0;
  // Five callers at once take turns with the other processes' (each take is a flock process).
  const callers = 5;
  const once = async () => {
    for (;;) {
      try {
        const l = await acquireLock(host, lock, "stress");
        if (++inside > 1) throw new Error("two holders at once in one process");
        // Across processes: a marker only one holder at a time may create.
        await writeFile(`${counter}.holder`, String(process.pid), { flag: "wx" }).catch(() => {
          throw new Error("two holders at once: the marker of another holder is there");
        });
        const v = Number(await readFile(counter, "utf8"));
        await sleep(1);
        await writeFile(counter, String(v + 1));
        await rm(`${counter}.holder`);
        inside--;
        await l.release();
        return;
      } catch (e) {
        if (!(e instanceof LockedError)) throw e;
        await sleep(5 + Math.random() * 20);
      }
    }
  };
  const caller = async (n: number) => {
    for (let i = 0; i < n; i++) await once();
  };
  await Promise.all(
    Array.from({ length: callers }, (_, i) =>
      caller(Math.floor(times / callers) + (i < times % callers ? 1 : 0)),
    ),
  );
}

// Take the lock and keep it until killed (a holder that dies holding it).
if (process.argv[2] === "--aplspawn-lock-hold") {
  const lock = process.argv[3] ?? "";
  acquireLock(realHost(), lock, "holder").then(() => {
    process.stdout.write("held\n");
    setInterval(() => undefined, 1 << 30);
  });
}

if (process.argv[2] === "--aplspawn-lock-stress") {
  const [, , , lock, counter, times] = process.argv;
  stress(lock ?? "", counter ?? "", Number(times)).catch((e) => {
    process.stderr.write(`${e}\n`);
    process.exitCode = 1;
  });
}
