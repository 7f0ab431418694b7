// Every workflow `aplspawn run <name>` knows, by name. A workflow's module (and the tasks it
// imports) is loaded when it is run: the CLI starts without them.
import type { WorkflowBuilder } from "./types.js";

/** The workflows, by the name given to `aplspawn run`. */
export const workflows: Record<string, { describe: string; load(): Promise<WorkflowBuilder> }> = {
  up: {
    describe: "the whole lab: network, image, containers, inventory",
    load: async () => (await import("./up.js")).up,
  },
  down: {
    describe: "undo everything the lab created, from the journal",
    load: async () => (await import("./down.js")).down,
  },
  netup: {
    describe: "bridge, forwarding, iptables chains",
    load: async () => (await import("./netup.js")).netup,
  },
  netdown: { describe: "undo the network", load: async () => (await import("./netdown.js")).netdown },
  getimage: {
    describe: "download (or build) and verify the image",
    load: async () => (await import("./getimage.js")).getimage,
  },
  spawn: {
    describe: "attach the image and start the containers",
    load: async () => (await import("./spawn.js")).spawn,
  },
  stop: {
    describe: "stop the containers and detach the image",
    load: async () => (await import("./stop.js")).stop,
  },
  cleanup: {
    describe: "remove the working directories' content",
    load: async () => (await import("./cleanup.js")).cleanup,
  },
};
