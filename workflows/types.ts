// What every workflow builder is: a config and options in, a workflow (only composition) out.
import type { Config } from "../config/schema.js";
import type { Owner } from "../src/lab/owner.js";
import type { Workflow } from "../src/runner/task.js";

/** What a workflow builder gets besides the config. */
export interface WorkflowOptions {
  /** Limit per-container work to these container names. */
  only?: string[];
  /** Overrides containers.concurrency. */
  concurrency?: number;
  /** down: also delete upper layers, keys and the downloaded image. */
  purge?: boolean;
  /** down with purge: the downloaded image stays (`aplspawn test` starts each lab fresh, not the cache). */
  keepImage?: boolean;
  /** up: the user who ran it through sudo (or --owner): gets their own copies to use the lab. */
  owner?: Owner;
  /**
   * Without an owner: the unprivileged account Ansible runs as (--ansible-user, else aplspawn's
   * own); it gets copies of its own, as an owner does, and an inventory of its own naming them.
   */
  ansibleUser?: Owner;
  /** snapshot save, restore, delete: the snapshot's name (src/lab/snapshots.ts). */
  snapshot?: string;
  /** up: the containers start on this snapshot's layers (`aplspawn test --reuse-prepare`). */
  fromSnapshot?: string;
  /** down: this snapshot stays, even with purge (`aplspawn test --reuse-prepare`). */
  keepSnapshot?: string;
  /** up of a lab across hosts: a host that fails is taken down alone, the others stay up. */
  keepGoing?: boolean;
}

/** Builds a workflow from a config: only composition, no I/O. */
export type WorkflowBuilder = (c: Config, o: WorkflowOptions) => Workflow;
