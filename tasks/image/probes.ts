// PLACEHOLDER: the image status probes are not written yet.
import type { Config } from "../../config/schema.js";
import type { Probe } from "../../src/runner/probe.js";

/** The image checks of `aplspawn status`. */
export const imageProbes = (_c: Config): Probe[] => [];
