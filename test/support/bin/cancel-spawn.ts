// Run by cancel-spawn.test.ts in a process group of its own: commands that cannot start (not on
// PATH), cancelled at every moment around their spawn, through the real Host. Prints how many
// SIGTERMs reached this process group: a kill meant for a child that never started, made into
// kill(0, SIGTERM) by Node, is one.
import { realHost } from "../../../src/host/real-host.js";

let signals = 0;
process.on("SIGTERM", () => {
  signals++;
});
const host = realHost();
const moments: ((f: () => void) => void)[] = [(f) => f(), queueMicrotask, (f) => process.nextTick(f)];
let errors = 0;
for (let i = 0; i < 30; i++)
  for (const at of moments) {
    const ac = new AbortController();
    const run = host.exec("aplspawn-test-no-such-command", [], { signal: ac.signal }).catch(() => {
      errors++;
    });
    at(() => ac.abort());
    await run;
  }
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(`${JSON.stringify({ signals, errors })}\n`);
