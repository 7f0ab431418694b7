// Preloaded by bench/syscalls.mjs (NODE_OPTIONS=--import): logs every process the CLI spawns, its
// argv and how long it ran, to $APLSPAWN_EXEC_LOG (one JSON line each).
import { ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";

const log = process.env.APLSPAWN_EXEC_LOG;
const spawn = ChildProcess.prototype.spawn;
if (log)
  ChildProcess.prototype.spawn = function (options) {
    const t0 = performance.now();
    const argv = options.args ?? [options.file];
    const r = spawn.call(this, options);
    this.once("exit", () =>
      appendFileSync(log, `${JSON.stringify({ t0, ms: performance.now() - t0, argv })}\n`),
    );
    return r;
  };
