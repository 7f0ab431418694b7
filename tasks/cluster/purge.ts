// Task: `run down --purge` of a lab across hosts, before the journal is undone: every host's share
// down with --purge (its lasting state there: upper layers, host keys, downloaded images) and the
// hosts' copies of the control node's images removed, by ansible/cluster-down.yml with
// aplspawn_purge. The journal's cluster.hosts rollback that follows finds nothing left to do.
// Nothing to roll back: it only removes.
import { defineTask } from "../../src/runner/task.js";
import { type ClusterHostsParams, playbook } from "./hosts.js";

/** Purges every host's share. */
export const clusterPurge = defineTask<ClusterHostsParams>({
  kind: "cluster.purge",
  title: () => "Purging each host's share (ansible-playbook cluster-down.yml, --purge there)",
  // Without the split's vars the lab never got to its hosts, or its down ran to the end already.
  check: async (ctx, p) => !(await ctx.host.fs.exists(`${p.dir}/vars.json`)),
  run: (ctx, p) => playbook(ctx, p, p.down, ["-e", '{"aplspawn_purge": true}']),
});
