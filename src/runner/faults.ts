// Fault injection (APLSPAWN_FAIL_AFTER): fail a run right after a given step, so tests can prove
// that a failure at every step rolls back what the run made.

/** The failure APLSPAWN_FAIL_AFTER injects. */
export class InjectedFault extends Error {
  override name = "InjectedFault";
}

const globRegex = (glob: string) =>
  new RegExp(
    `^(?:${glob
      .split(",")
      .map((g) =>
        g
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replaceAll("*", ".*")
          .replaceAll("?", "."),
      )
      .join("|")})$`,
  );

/** Which step ids fail: a comma-separated list of globs (`*`, `?`); none without one. */
export class FaultPlan {
  private readonly match: RegExp | undefined;

  constructor(private readonly glob: string | undefined) {
    this.match = glob ? globRegex(glob) : undefined;
  }

  /** The fault to inject after step `id`, if it is one of the plan's. */
  after(id: string): InjectedFault | undefined {
    return this.match?.test(id)
      ? new InjectedFault(`injected failure after ${id} (APLSPAWN_FAIL_AFTER=${this.glob})`)
      : undefined;
  }
}
