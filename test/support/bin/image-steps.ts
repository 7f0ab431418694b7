// Runs the image steps that no workflow of their own exposes (attach, detach, status) the way the CLI
// runs workflows, inside a test namespace. Only acts when started with --aplspawn-drive: the test
// runner also loads every file under test/ and must find nothing to do here.
import { readFile } from "node:fs/promises";
import { parseConfig } from "../../../config/load.js";
import { labDir } from "../../../config/paths.js";
import { errorMessage } from "../../../src/errors.js";
import { realHost } from "../../../src/host/real-host.js";
import { runProbes } from "../../../src/runner/probe.js";
import { renderEvent } from "../../../src/runner/report.js";
import { runWorkflow } from "../../../src/runner/runner.js";
import { taskRegistry } from "../../../tasks/index.js";
import { attachSteps, detachSteps } from "../../../workflows/attach.js";
import { stepProbes } from "../../../workflows/status.js";

async function drive(action: string, file: string): Promise<number> {
  const c = parseConfig(await readFile(file, "utf8"), file);
  const host = realHost();
  if (action === "status") {
    const r = await runProbes(stepProbes(attachSteps(c)), { host, signal: new AbortController().signal });
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return r.every((p) => p.ok) ? 0 : 1;
  }
  const steps = action === "attach" ? attachSteps(c) : detachSteps();
  try {
    await runWorkflow(
      { name: action, steps },
      {
        host,
        lab: c.lab,
        labDir: labDir(c),
        registry: taskRegistry(),
        mode: "plain",
        emit: (e) => {
          const line = renderEvent("plain", e);
          if (line !== undefined) process.stdout.write(`${line}\n`);
        },
        failAfter: process.env.APLSPAWN_FAIL_AFTER || undefined,
        noRollback: process.env.DRIVE_NO_ROLLBACK === "1",
        command: `drive ${action}`,
      },
    );
    return 0;
  } catch (e) {
    process.stderr.write(`drive: ${errorMessage(e)}\n`);
    return 1;
  }
}

if (process.argv[2] === "--aplspawn-drive") {
  drive(process.argv[3] ?? "", process.argv[4] ?? "").then((code) => {
    process.exitCode = code;
  });
}
