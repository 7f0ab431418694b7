// PLACEHOLDER: the container status probes are not written yet.
import type { Config } from "../../config/schema.js";
import type { Probe } from "../../src/runner/probe.js";

/** The container checks of `aplspawn status`. */
export const containerProbes = (_c: Config): Probe[] => [];
