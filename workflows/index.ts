// Every workflow `aplspawn run <name>` knows, by name.
import type { Config } from "../config/schema.js";
import type { Workflow } from "../src/runner/task.js";
import { cleanup } from "./cleanup.js";
import { down } from "./down.js";
import { getimage } from "./getimage.js";
import { netdown } from "./netdown.js";
import { netup } from "./netup.js";
import { spawn } from "./spawn.js";
import { stop } from "./stop.js";
import { up } from "./up.js";

/** What a workflow builder gets besides the config. */
export interface WorkflowOptions {
  /** Limit per-container work to these container names. */
  only?: string[];
  /** Overrides containers.concurrency. */
  concurrency?: number;
  /** down: also delete upper layers, keys and the downloaded image. */
  purge?: boolean;
}

/** Builds a workflow from a config: only composition, no I/O. */
export type WorkflowBuilder = (c: Config, o: WorkflowOptions) => Workflow;

/** The workflows, by the name given to `aplspawn run`. */
export const workflows: Record<string, { describe: string; build: WorkflowBuilder }> = {
  up: { describe: "the whole lab: network, image, containers, inventory", build: up },
  down: { describe: "undo everything the lab created, from the journal", build: down },
  netup: { describe: "bridge, forwarding, iptables chains", build: netup },
  netdown: { describe: "undo the network", build: netdown },
  getimage: { describe: "download (or build) and verify the image", build: getimage },
  spawn: { describe: "attach the image and start the containers", build: spawn },
  stop: { describe: "stop the containers and detach the image", build: stop },
  cleanup: { describe: "remove the working directories' content", build: cleanup },
};
