// A process that takes and lets go of the tests' inotify raise (test/support/inotify.ts) many times,
// on a limit file and a record it is given, and prints how many of its holds read the limit below
// 8192. Only acts when started with --aplspawn-inotify-holds (the test runner loads every file under
// test/).
import { readFileSync } from "node:fs";
import { holdInotify } from "../inotify.js";

if (process.argv[2] === "--aplspawn-inotify-holds") {
  const [, , , limit = "", record = "", times] = process.argv;
  let low = 0;
  for (let i = 0; i < Number(times); i++) {
    const release = holdInotify({ limit, record });
    if (readFileSync(limit, "utf8").trim() !== "8192") low++;
    release();
  }
  process.stdout.write(`${JSON.stringify({ low })}\n`);
}
