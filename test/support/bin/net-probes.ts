// Runs the net status probes for a config file and prints their results as JSON. Tests start it
// inside a test namespace, so the probes read that namespace's bridge, sysctl and rules.
import { setMaxListeners } from "node:events";
import { readFile } from "node:fs/promises";
import { parseConfig } from "../../../config/load.js";
import { realHost } from "../../../src/host/real-host.js";
import { runProbes } from "../../../src/runner/probe.js";
import { netupSteps } from "../../../workflows/netup.js";
import { stepProbes } from "../../../workflows/status.js";

const file = process.argv[2] ?? "";
const config = parseConfig(await readFile(file, "utf8"), file);
const signal = new AbortController().signal;
// Probes run concurrently and each command listens on this one signal: more than node's default 10.
setMaxListeners(64, signal);
const results = await runProbes(stepProbes(netupSteps(config)), { host: realHost(), signal });
process.stdout.write(JSON.stringify(results));
