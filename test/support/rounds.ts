// How many times the repetition tests repeat. A race that shows in a fraction of rounds shows in the
// suite's count often enough to be seen across runs; APLSPAWN_TEST_DEEP=1 (a nightly run, a release,
// a hunt for a race) runs the long counts.
export const rounds = (suite: number, deep: number): number =>
  process.env.APLSPAWN_TEST_DEEP ? deep : suite;
