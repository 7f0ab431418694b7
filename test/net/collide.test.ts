// Two labs never share a name: of two labs started at the same instant with one bridge, exactly one
// runs and the other is refused naming it, before it makes anything (so its rollback cannot take the
// first one's bridge); container names are claimed host-wide the same way.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { dropClaim, takeClaim } from "../../src/lab/claims.js";
import { assertNoResidue, ok } from "../support/lab.js";
import { netTest, probes } from "../support/net-lab.js";
import { skip } from "../support/ns.js";
import { rounds } from "../support/rounds.js";

const ROUNDS = rounds(8, 20);

netTest(
  `two labs with one bridge started at once, ${ROUNDS} times: exactly one runs, the other is refused`,
  {},
  async (a) => {
    const b = await a.add("other", 14, { network: { bridge: "nspawnd0", chain: "OTHER" } });
    for (let i = 0; i < ROUNDS; i++) {
      const [ra, rb] = await Promise.all([a.cli(["run", "netup"]), b.cli(["run", "netup"])]);
      const winners = [ra, rb].filter((r) => r.exitCode === 0);
      assert.equal(winners.length, 1, `round ${i}: exactly one runs\n${ra.stderr}\n${rb.stderr}`);
      const [won, lost] = ra.exitCode === 0 ? [a, b] : [b, a];
      const loser = ra.exitCode === 0 ? rb : ra;
      assert.equal(loser.exitCode, 1, loser.stdout + loser.stderr);
      assert.match(
        loser.stderr,
        new RegExp(`bridge nspawnd0: already lab ${won.name}'s`),
        `round ${i}: the refusal names the other lab`,
      );
      const failing = (await probes(won)).filter((p) => !p.ok);
      assert.deepEqual(failing, [], `round ${i}: the survivor's status passes`);
      // The loser left nothing to undo; the survivor's netdown leaves nothing at all.
      assert.doesNotMatch(ok(await lost.cli(["run", "netdown"])).stdout, /UNDONE/);
      ok(await won.cli(["run", "netdown"]));
      await assertNoResidue(a, `after round ${i}`);
    }
  },
);

test("container names are one lab's on the host; a claim of a lab that is gone does not count", {
  skip,
}, async () => {
  const d = await mkdtemp(join(tmpdir(), "aplspawn-claims-"));
  const ctx = { host: realHost(), signal: new AbortController().signal };
  const labA = join(d, "a");
  const labB = join(d, "b");
  try {
    for (const l of [labA, labB]) {
      await mkdir(l);
      await writeFile(join(l, "journal.jsonl"), "");
    }
    await takeClaim(ctx, { part: "containers", lab: "a", labDir: labA, names: ["web-10", "web-11"] });
    await assert.rejects(
      takeClaim(ctx, { part: "containers", lab: "b", labDir: labB, names: ["web-11", "web-12"] }),
      new RegExp(`container name web-11: already lab a's \\(${labA}\\)`),
    );
    // Other names are free; and once lab a is gone (no journal), its claim no longer holds anything.
    await takeClaim(ctx, { part: "containers", lab: "b", labDir: labB, names: ["web-12"] });
    await rm(join(labA, "journal.jsonl"));
    await takeClaim(ctx, { part: "containers", lab: "b", labDir: labB, names: ["web-10", "web-11"] });
    await dropClaim(ctx, { part: "containers", labDir: labB });
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
