// JUnit XML, the report CI systems show (GitLab, Jenkins, GitHub's test reporters): one testsuite
// per lab (scenario), one testcase per step with its time, a failure with its message and output.
// Pure: the caller writes the text where --junit says.

/** A step as reported: its name, how long it took, and why it failed (or was not run). */
export interface JUnitCase {
  name: string;
  /** Seconds. */
  time: number;
  failure?: { message: string; output: string };
  /** Not run (an earlier step failed): a skipped testcase. */
  skipped?: string;
  /** A note on a passed step (its <system-out>): a prepare reused from a snapshot says which. */
  note?: string;
}

/** A lab's sequence: the suite's name (the scenario) and its steps. */
export interface JUnitSuite {
  name: string;
  cases: JUnitCase[];
}

// XML 1.0 allows no control characters but tab, newline and carriage return, even escaped.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
const clean = (s: string) => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "");
const attr = (s: string) =>
  clean(s)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/\n/g, "&#10;");
const text = (s: string) => clean(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const secs = (t: number) => t.toFixed(3);

/** The JUnit XML document of these suites. */
export function junitXml(suites: readonly JUnitSuite[], name = "aplspawn test"): string {
  const total = (s: JUnitSuite) => s.cases.reduce((t, c) => t + c.time, 0);
  const count = (cs: JUnitCase[], f: (c: JUnitCase) => boolean) => cs.filter(f).length;
  const all = suites.flatMap((s) => s.cases);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${attr(name)}" tests="${all.length}" failures="${count(all, (c) => !!c.failure)}" skipped="${count(all, (c) => c.skipped !== undefined)}" time="${secs(suites.reduce((t, s) => t + total(s), 0))}">`,
  ];
  for (const s of suites) {
    lines.push(
      `  <testsuite name="${attr(s.name)}" tests="${s.cases.length}" failures="${count(s.cases, (c) => !!c.failure)}" errors="0" skipped="${count(s.cases, (c) => c.skipped !== undefined)}" time="${secs(total(s))}">`,
    );
    for (const c of s.cases) {
      const open = `    <testcase name="${attr(c.name)}" classname="${attr(s.name)}" time="${secs(c.time)}"`;
      if (c.failure)
        lines.push(
          `${open}>`,
          `      <failure message="${attr(c.failure.message)}" type="${attr(c.name)}">${text(c.failure.output)}</failure>`,
          "    </testcase>",
        );
      else if (c.skipped !== undefined)
        lines.push(`${open}>`, `      <skipped message="${attr(c.skipped)}"/>`, "    </testcase>");
      else if (c.note !== undefined)
        lines.push(`${open}>`, `      <system-out>${text(c.note)}</system-out>`, "    </testcase>");
      else lines.push(`${open}/>`);
    }
    lines.push("  </testsuite>");
  }
  lines.push("</testsuites>", "");
  return lines.join("\n");
}
