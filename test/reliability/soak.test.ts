// The soak (issue #29, item 3): 3 labs of 2 containers on one workdir and one image, started
// together, each doing rounds of up, reset of one container, provision of a small playbook and down;
// one lab's up fails midway (a fault after its last container is ready) while the others run. Every
// command of the healthy labs succeeds, the faulted lab rolls back leaving nothing of its own and
// goes on, and nothing is left after the last down. Two rounds here; the bench runs it for minutes
// (`node bench/run.mjs --parts soak --minutes N`, 4 labs). Shared with the bench: test/support/soak.ts.
// Three labs, not four: two healthy labs beside each other and the faulted one beside both are
// every pairing the soak asserts on; a fourth lab on 2 cores adds the same again.
import assert from "node:assert/strict";
import { assertNoResidue, labTest } from "../support/lab.js";
import { soak, soakFault, soakLabs } from "../support/soak.js";

const LABS = 3;
const ROUNDS = 2;

labTest(
  "soak: 3 labs of 2 containers on one workdir and image, up, reset, provision, down, twice, one faulted midway: every healthy command succeeds, the faulted lab rolls back clean, nothing is left",
  { name: "soak0", subnet: 101 },
  async (lab) => {
    const labs = await soakLabs(lab, LABS, 101);
    const faulted = labs[LABS - 1]!;
    const ids = (await faulted.cli(["run", "up", "--list-tasks"])).stdout.split("\n");
    assert.ok(ids.includes(soakFault(faulted)), `no task ${soakFault(faulted)} in:\n${ids.join("\n")}`);
    const r = await soak(lab, labs, { rounds: ROUNDS, fault: { lab: LABS - 1, round: 1 } });
    assert.deepEqual(r.failures, [], "commands of the labs failed");
    assert.deepEqual(r.faultProblems, [], "the faulted up did not roll back clean");
    assert.equal(r.rounds, LABS * ROUNDS);
    await assertNoResidue(lab, "after the last down");
  },
);
