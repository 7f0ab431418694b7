// PLACEHOLDER: the net status probes are not written yet.
import type { Config } from "../../config/schema.js";
import type { Probe } from "../../src/runner/probe.js";

/** The net checks of `aplspawn status`. */
export const netProbes = (_c: Config): Probe[] => [];
