// The JUnit report: one suite per lab, one testcase per step with its time; a failure carries its
// message and output, escaped so that any playbook output makes a well-formed document.
import assert from "node:assert/strict";
import { test } from "node:test";
import { execa } from "execa";
import { junitXml } from "../../src/runner/junit.js";

test("suites, testcases, times, a failure with its output, a skipped step; escaped text", async () => {
  const xml = junitXml([
    {
      name: "default",
      cases: [
        { name: "create", time: 2.5 },
        {
          name: "verify",
          time: 1,
          failure: {
            message: 'TASK [motd says "hi" & <more>] failed on c-10: Assertion failed',
            output: 'fatal: [c-10]: FAILED! => {"msg": "<&>"}\n\u001b[0mend',
          },
        },
        { name: "destroy", time: 0.25 },
      ],
    },
    { name: "other", cases: [{ name: "converge", time: 0, skipped: "create failed" }] },
  ]);
  assert.match(
    xml,
    /^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="aplspawn test" tests="4" failures="1" skipped="1" time="3.750">/,
  );
  assert.match(xml, /<testsuite name="default" tests="3" failures="1" errors="0" skipped="0" time="3.750">/);
  assert.match(xml, /<testcase name="create" classname="default" time="2.500"\/>/);
  assert.match(
    xml,
    /<failure message="TASK \[motd says &quot;hi&quot; &amp; &lt;more&gt;\] failed on c-10: Assertion failed" type="verify">fatal: \[c-10\]: FAILED! =&gt; \{"msg": "&lt;&amp;&gt;"\}\n\[0mend<\/failure>/,
  );
  assert.match(
    xml,
    /<testcase name="converge" classname="other" time="0.000">\n {6}<skipped message="create failed"\/>/,
  );
  // Well-formed: an XML parser reads it back.
  const parsed = await execa(
    "python3",
    [
      "-c",
      "import sys, xml.dom.minidom as m; d = m.parseString(sys.stdin.read()); print(len(d.getElementsByTagName('testcase')))",
    ],
    { input: xml },
  );
  assert.equal(parsed.stdout.trim(), "4");
});
