// Every workflow `aplspawn run <name>` knows, by name. A workflow's module (and the tasks it
// imports) is loaded when it is run: the CLI starts without them.
import type { WorkflowBuilder, WorkflowOptions } from "./types.js";

/** A workflow as `aplspawn run` knows it: what it does, the options it takes, its builder. */
export interface WorkflowEntry {
  describe: string;
  /** The `run` options this workflow takes; any other is refused. */
  options: readonly (keyof WorkflowOptions)[];
  /** It only undoes what a run made: a lab with no journal has nothing of it, and is not recorded. */
  undoes?: true;
  /** `run NAME --lab LAB`: it can work from what the lab's last run recorded (its config may be gone). */
  byLabName?: true;
  /** It makes the network: a bridge name that is another interface's is refused before anything. */
  makesNetwork?: true;
  /** It runs provision.playbook: the playbook must exist and parse, for whom runs it, before anything. */
  runsPlaybook?: true;
  /** It writes the inventory where the config says: root writes only under the config's directory. */
  writesInventory?: true;
  /** What follows a run that was not a preview: the lab table, then the playbook as a run of its own. */
  followedBy?: readonly ("labTable" | "provision")[];
  load(): Promise<WorkflowBuilder>;
}

/** The workflows, by the name given to `aplspawn run`. */
export const workflows: Record<string, WorkflowEntry> = {
  up: {
    describe: "the whole lab: network, image, containers, inventory",
    options: ["concurrency", "owner", "ansibleUser", "keepGoing"],
    makesNetwork: true,
    runsPlaybook: true,
    writesInventory: true,
    followedBy: ["labTable", "provision"],
    load: async () => (await import("./up.js")).up,
  },
  down: {
    describe: "undo everything the lab created, from the journal",
    options: ["concurrency", "purge"],
    undoes: true,
    byLabName: true,
    load: async () => (await import("./down.js")).down,
  },
  netup: {
    describe: "bridge, forwarding, iptables chains",
    options: [],
    makesNetwork: true,
    load: async () => (await import("./netup.js")).netup,
  },
  netdown: {
    describe: "undo the network",
    options: [],
    undoes: true,
    load: async () => (await import("./netdown.js")).netdown,
  },
  getimage: {
    describe: "download (or build) and verify the image",
    options: [],
    load: async () => (await import("./getimage.js")).getimage,
  },
  spawn: {
    describe: "attach the image and start the containers",
    // owner: whose host paths containers.binds may name besides root's.
    options: ["only", "concurrency", "owner"],
    followedBy: ["labTable"],
    load: async () => (await import("./spawn.js")).spawn,
  },
  stop: {
    describe: "stop the containers and detach the image",
    options: ["only", "concurrency"],
    undoes: true,
    load: async () => (await import("./stop.js")).stop,
  },
  provision: {
    describe: "run provision.playbook against the lab (run up runs it at its end)",
    options: ["owner", "ansibleUser"],
    runsPlaybook: true,
    load: async () => (await import("./provision.js")).provision,
  },
  reset: {
    describe: "the containers --only names back to the image's clean state, the rest untouched",
    options: ["only", "concurrency", "owner", "ansibleUser"],
    load: async () => (await import("./reset.js")).reset,
  },
  cleanup: {
    describe: "remove the working directories' content",
    options: [],
    undoes: true,
    load: async () => (await import("./cleanup.js")).cleanup,
  },
};
