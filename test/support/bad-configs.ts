// The corpus of invalid configs: each with a name, its YAML and what its error must say. Run
// through the CLI by test/cli/bad-config.test.ts, and against the JSON Schema by schema.test.ts.
import assert from "node:assert/strict";
import { ConfigError } from "../../config/diagnostic.js";
import { parseConfig } from "../../config/load.js";

/** [name, YAML (workdir/machinesDir are added unless the case sets them), what the message must say] */
export const BAD_CONFIGS: [string, string, RegExp][] = [
  ["yaml syntax: unclosed flow", "lab: [a\n", /YAML syntax: .* \(line 2, column 1\)$/m],
  [
    "yaml syntax: bad indentation",
    "network:\n  bridge: a\n bridge2: b\n",
    /YAML syntax: this key is not in line with the keys above it.* \(line 3, column 1\)$/m,
  ],
  [
    "yaml duplicate key",
    "lab: a\nlab: b\n",
    /YAML syntax: this key is written twice .*unique.* \(line 3, column 1\)$/m,
  ],
  ["top level is a list", "- a\n- b\n", /top level: must be a mapping/],
  ["top level is a scalar", "hello\n", /top level: must be a mapping/],
  ["unknown top-level key", "labb: x\n", /labb: unknown key \(did you mean "lab"\?\)/],
  [
    "unknown nested key",
    "containers: {cuont: 3}\n",
    /containers\.cuont: unknown key \(did you mean "count"\?\)/,
  ],
  ["unknown key, no close match", "zzzzzz: 1\n", /zzzzzz: unknown key \(line 2, column 1\)$/m],
  // Where the problem is and what is written there (the corpus puts a workdir line first).
  [
    "a value's line, column and text",
    "network:\n  nat: maybe\n",
    /network\.nat: .*\(line 3, column 8: "maybe"\)$/m,
  ],
  [
    "yes for a boolean",
    "inventory: {ping: yes}\n",
    /inventory\.ping: .*"yes"; YAML 1\.2 reads yes as a string: write true\)/,
  ],
  [
    "off for a boolean",
    "network: {nat: off}\n",
    /network\.nat: .*"off"; YAML 1\.2 reads off as a string: write false\)/,
  ],
  [
    "a digest read as a number",
    "image: {sha256: 1234}\n",
    /image\.sha256: .*1234; YAML read it as a number: put it in quotes\)/,
  ],
  ["lab with slash", "lab: a/b\n", /lab: /],
  ["lab with ..", "lab: a..b\n", /lab: lab must not contain "\.\."/],
  ["lab with space", "lab: 'a b'\n", /lab: /],
  ["lab of 100 characters", `lab: ${"a".repeat(100)}\n`, /lab: lab must be at most 32/],
  [
    "lab not a string",
    "lab: 42\n",
    /lab: must be a string \(line 2, column 6: 42; YAML read it as a number: put it in quotes\)/,
  ],
  ["workdir relative", "workdir: var/lib\n", /workdir: must be an absolute path/],
  ["workdir with ..", "workdir: /var/../etc\n", /workdir: must not contain "\.\."/],
  [
    "bridge too long for the kernel",
    "network: {bridge: abcdefghijklmnop}\n",
    /network\.bridge: .*at most 15/,
  ],
  ["bridge with slash", "network: {bridge: br/0}\n", /network\.bridge: /],
  ["bridge with shell metacharacters", "network: {bridge: 'br;rm'}\n", /network\.bridge: /],
  ["chain too long", `network: {chain: ${"C".repeat(24)}}\n`, /network\.chain: .*at most 23/],
  [
    "host port without protocol",
    "network: {hostPorts: ['3142']}\n",
    /network\.hostPorts\.0: must be tcp\/PORT/,
  ],
  [
    "host port out of range",
    "network: {hostPorts: [tcp/70000]}\n",
    /network\.hostPorts\.0: the port must be 1 to 65535/,
  ],
  ["allowFrom not a subnet", "network: {allowFrom: [example.com]}\n", /network\.allowFrom\.0: /],
  ["allowMetadata not a boolean", "network: {allowMetadata: sure}\n", /network\.allowMetadata: /],
  [
    "forward to a container not in the lab",
    "network: {forwards: [{hostPort: 2222, container: web, port: 22}]}\n",
    /network\.forwards\.0\.container: no container named web in this lab/,
  ],
  [
    "host port forwarded twice",
    "network: {forwards: [{hostPort: 2222, container: aplspawn10, port: 22}, {hostPort: 2222, container: aplspawn11, port: 22}]}\n",
    /network\.forwards\.1: host port tcp\/2222 is forwarded twice/,
  ],
  [
    "forward with a bad port",
    "network: {forwards: [{hostPort: 0, container: aplspawn10, port: 22}]}\n",
    /network\.forwards\.0\.hostPort: /,
  ],
  // The message says what the rule is: no "." in a chain's name.
  [
    "chain with dot",
    "network: {chain: A.B}\n",
    /network\.chain: network\.chain may use only letters, digits, "_" and "-", and must/,
  ],
  [
    "address without prefix",
    "network: {address: 10.0.0.1}\n",
    /network\.address: must be an IPv4 address with a prefix/,
  ],
  ["address not an IP", "network: {address: foo/24}\n", /network\.address: /],
  [
    "address /31",
    "network: {address: 10.0.0.0/31}\ncontainers: {ipRange: [10.0.0.1, 10.0.0.1], count: 1}\n",
    /network\.address: the prefix must be \/30/,
  ],
  [
    "address is the network address",
    "network: {address: 10.0.0.0/24}\ncontainers: {ipRange: [10.0.0.10, 10.0.0.20]}\n",
    /network\.address: 10\.0\.0\.0 is the subnet's network/,
  ],
  ["nat not a boolean", "network: {nat: yes please}\n", /network\.nat: /],
  [
    "range outside the subnet",
    "containers: {ipRange: [10.10.13.10, 10.10.13.20]}\n",
    /containers\.ipRange\.0: 10\.10\.13\.10 is not a host address/,
  ],
  [
    "range contains the bridge address",
    "containers: {ipRange: [10.10.12.1, 10.10.12.20]}\n",
    /containers\.ipRange: contains the bridge address/,
  ],
  [
    "range reversed",
    "containers: {ipRange: [10.10.12.20, 10.10.12.10]}\n",
    /containers\.ipRange: 10\.10\.12\.20 comes after/,
  ],
  ["range of one IP element", "containers: {ipRange: [10.10.12.20]}\n", /containers\.ipRange/],
  [
    "range with a bad IP",
    "containers: {ipRange: [10.10.12.300, 10.10.12.310]}\n",
    /containers\.ipRange\.0: /,
  ],
  [
    "more containers than addresses",
    "containers: {count: 20, ipRange: [10.10.12.10, 10.10.12.19]}\n",
    /containers\.count: 20 containers do not fit/,
  ],
  ["count zero", "containers: {count: 0}\n", /containers\.count: /],
  ["count not an integer", "containers: {count: 2.5}\n", /containers\.count: /],
  [
    "count a string",
    "containers: {count: three}\n",
    /containers\.count: must be a number \(line 2, column 21: "three"\)/,
  ],
  ["prefix with slash", "containers: {prefix: a/b}\n", /containers\.prefix: /],
  ["prefix with ..", "containers: {prefix: ..}\n", /containers\.prefix: /],
  ["prefix upper case", "containers: {prefix: Apl}\n", /containers\.prefix: /],
  ["prefix of 100 characters", `containers: {prefix: ${"a".repeat(100)}}\n`, /containers\.prefix: /],
  [
    "machinesDir relative",
    "containers: {machinesDir: machines}\n",
    /containers\.machinesDir: must be an absolute path/,
  ],
  ["init unknown", "containers: {init: systemd}\n", /containers\.init: /],
  [
    "user with shell metacharacters",
    "containers: {user: '$(id)'}\n",
    /containers\.user: must be a valid user name/,
  ],
  ["user of 100 characters", `containers: {user: ${"u".repeat(100)}}\n`, /containers\.user: /],
  ["readyTimeout negative", "containers: {readyTimeout: -1}\n", /containers\.readyTimeout: /],
  ["concurrency zero", "containers: {concurrency: 0}\n", /containers\.concurrency: /],
  [
    "ssh key that does not exist",
    "containers: {sshKey: /nonexistent/key}\n",
    /containers\.sshKey: \/nonexistent\/key does not exist: leave the key out .*\(line 2, column 22\)$/m,
  ],
  [
    "image url ftp",
    "image: {url: 'ftp://example.invalid/x.img'}\n",
    /image\.url: must be an http:\/\/, https:\/\/ or file:\/\/ URL/,
  ],
  ["image url not a URL", "image: {url: 'not a url'}\n", /image\.url: /],
  ["checksum too short", "image: {sha256: abc123}\n", /image\.sha256: must be 64 hexadecimal digits/],
  ["checksum not hex", `image: {sha256: ${"g".repeat(64)}}\n`, /image\.sha256: must be 64 hexadecimal/],
  ["checksums URL bad", "image: {checksums: 'gopher://x'}\n", /image\.checksums: /],
  [
    "both sha256 and checksums",
    `image: {sha256: ${"a".repeat(64)}, checksums: 'http://127.0.0.1/SHA256SUMS'}\n`,
    /image: give image\.sha256 or image\.checksums, not both/,
  ],
  [
    "build package with metacharacters",
    "image: {build: {packages: ['sudo;reboot']}}\n",
    /image\.build\.packages\.0: must be a Debian package name/,
  ],
  ["build suite with slash", "image: {build: {suite: ../etc}}\n", /image\.build\.suite: /],
  [
    "loop device not a loop device",
    "image: {loopDevice: /dev/sda}\n",
    /image\.loopDevice: must be a loop device/,
  ],
  ["inventory format unknown", "inventory: {format: json}\n", /inventory\.format: /],
  [
    "inventory group with dash",
    "inventory: {group: my-group}\n",
    /inventory\.group: must be a valid Ansible group/,
  ],
  ["network not a mapping", "network: nspawnd0\n", /network: /],
  [
    "workdir with a line break",
    'workdir: "/var/lib/a\\nb"\n',
    /workdir: must not contain NUL or a line break/,
  ],
  ["inventory file with ..", "inventory: {file: ../../etc/x}\n", /inventory\.file: must not contain "\.\."/],
  ["address /7", "network: {address: 10.0.0.1/7}\n", /network\.address: the prefix must be \/8 or longer/],
  [
    "address loopback",
    "network: {address: 127.0.0.1/24}\ncontainers: {ipRange: [127.0.0.10, 127.0.0.20]}\n",
    /network\.address: 127\.0\.0\.1 is a loopback address/,
  ],
  [
    "address link-local",
    "network: {address: 169.254.0.1/24}\ncontainers: {ipRange: [169.254.0.10, 169.254.0.20]}\n",
    /network\.address: .* is a link-local address/,
  ],
  [
    "address multicast",
    "network: {address: 224.0.0.1/24}\ncontainers: {ipRange: [224.0.0.10, 224.0.0.20]}\n",
    /network\.address: .* is a multicast address/,
  ],
  [
    "address in 0.0.0.0/8",
    "network: {address: 0.0.0.1/24}\ncontainers: {ipRange: [0.0.0.10, 0.0.0.20]}\n",
    /network\.address: .* is a "this network" address/,
  ],
  [
    "address reserved 240/4",
    "network: {address: 250.0.0.1/24}\ncontainers: {ipRange: [250.0.0.10, 250.0.0.20]}\n",
    /network\.address: .* is a reserved address/,
  ],
  [
    "lab named like the image store",
    "lab: images\n",
    /lab: "images" is the name of the workdir's image store/,
  ],
  [
    "lab named like the id ranges",
    "lab: userns\n",
    /lab: "userns" is the name of aplspawn's record of user id ranges/,
  ],
  ["lab named like the index of labs", "lab: labs\n", /lab: "labs" is the name of aplspawn's index of labs/],
  [
    "a host var Ansible would template on the controller",
    "containers: {sets: [{name: web, vars: {motd: \"{{ lookup('pipe', 'id') }}\"}}]}\n",
    /containers\.sets\.0\.vars\.motd: holds Ansible templating .*inventory\.templates: true/,
  ],
  [
    "templating deep in a host var",
    "containers: {sets: [{name: web, vars: {deep: {list: [ok, '{% if 1 %}x{% endif %}']}}}]}\n",
    /containers\.sets\.0\.vars\.deep\.list\.1: holds Ansible templating/,
  ],
  ["workdir is /", "workdir: /\n", /workdir: must be a directory of its own/],
  ["workdir is /etc", "workdir: /etc\n", /workdir: must be a directory of its own/],
  ["workdir is /usr/ (normalized)", "workdir: /usr/\n", /workdir: must be a directory of its own/],
  ["workdir is //var//lib (normalized)", "workdir: //var//lib\n", /workdir: must be a directory of its own/],
  [
    "machinesDir is /var",
    "containers: {machinesDir: /var}\n",
    /containers\.machinesDir: must be a directory of its own/,
  ],
  ["workdir with a template", "workdir: '/var/{{ x }}'\n", /workdir: must not contain "\{\{"/],
  [
    "inventory file with a template",
    "inventory: {file: 'inv{% if 1 %}'}\n",
    /inventory\.file: must not contain "\{\{" or "\{%"/,
  ],
  [
    "machinesDir with %",
    "containers: {machinesDir: /m/%h}\n",
    /containers\.machinesDir: must not contain "%"/,
  ],
  ["sshKey with %", "containers: {sshKey: /k/%d}\n", /containers\.sshKey: must not contain "%"/],
  [
    "image url malformed percent-encoding",
    `image: {url: 'https://example.invalid/a%zz.img', sha256: ${"a".repeat(64)}}\n`,
    /image\.url: malformed percent-encoding/,
  ],
  [
    "a set's image url malformed percent-encoding",
    `containers: {sets: [{name: a, image: {url: 'file:///i/a%zz.img'}}]}\n`,
    /containers\.sets\.0\.image\.url: malformed percent-encoding/,
  ],
  [
    "a set's image without a source",
    "containers: {sets: [{name: a, image: {build: {suite: trixie}}}]}\n",
    /containers\.sets\.0\.image: names no image: give its url .*, oci .* or server with alias .* \(line 2, column 38\)/,
  ],
  [
    "a set's image with url and oci",
    "containers: {sets: [{name: a, image: {url: 'file:///img/a.img', oci: 'x.org/y:1'}}]}\n",
    /containers\.sets\.0\.image\.url: give one image source: url, oci, or server with alias, not url and oci/,
  ],
  ...(
    [
      ["name decodes to ..", "x/%2e%2e"],
      ["name decodes to a slash", "x/a%2Fb.img"],
      ["with no file name", ""],
      ["name with NUL", "a%00.img"],
    ] as const
  ).map(([what, path]): [string, string, RegExp] => [
    `image url ${what}`,
    `image: {url: 'https://example.invalid/${path}', sha256: ${"a".repeat(64)}}\n`,
    /image\.url: must end in a file name/,
  ]),
  [
    "https image, nothing to verify it",
    "image: {url: 'https://example.invalid/deb.img'}\n",
    /image: a downloaded image must be verified: give image\.sha256 or image\.checksums \(or image\.insecure: true/,
  ],
  [
    "http image, nothing to verify it",
    "image: {url: 'http://example.invalid/deb.img'}\n",
    /image: a downloaded image must be verified/,
  ],
  [
    "checksums over plain http",
    "image: {url: 'https://example.invalid/deb.img', checksums: 'http://example.invalid/SHA256SUMS'}\n",
    /image\.checksums: over plain http anyone on the way can rewrite/,
  ],
  ["address /0", "network: {address: 10.0.0.1/0}\n", /network\.address: the prefix must be \/8 or longer/],
  ["inventory file with %", "inventory: {file: inv%d}\n", /inventory\.file: must not contain "%"/],
  ["workdir is /var/lib/ (normalized)", "workdir: /var/lib/\n", /workdir: must be a directory of its own/],
  ["workdir is /tmp", "workdir: /tmp\n", /workdir: must be a directory of its own/],
  [
    "machinesDir is /",
    "containers: {machinesDir: /}\n",
    /containers\.machinesDir: must be a directory of its own/,
  ],
  [
    "image file url with NUL",
    "image: {url: 'file:///i/a%00b.img'}\n",
    /image\.url: the file path .* must not contain "\.\." or NUL/,
  ],
  [
    "image url with credentials",
    `image: {url: 'https://me:secret@example.invalid/deb.img', sha256: ${"a".repeat(64)}}\n`,
    /image\.url: credentials in a URL would be printed and journaled/,
  ],
  [
    "checksums url with credentials",
    "image: {url: 'https://example.invalid/deb.img', checksums: 'https://me:secret@example.invalid/SUMS'}\n",
    /image\.checksums: credentials in a URL/,
  ],
  [
    "checksumsKeyring without checksums",
    `image: {url: 'https://example.invalid/deb.img', sha256: ${"a".repeat(64)}, checksumsKeyring: /k.gpg}\n`,
    /image\.checksumsKeyring: checks the signature of image\.checksums, which is not set/,
  ],
  ["maxSize not positive", "image: {maxSize: 0}\n", /image\.maxSize: /],
  ["insecure not a boolean", "image: {insecure: maybe}\n", /image\.insecure: /],
  [
    "inventory file with a line break",
    'inventory: {file: "inv\\n[x]"}\n',
    /inventory\.file: must not contain NUL or a line break/,
  ],
  // Numbers: a whole number is asked for without a hint about quotes; a host port is tcp/PORT.
  [
    "concurrency not a whole number",
    "containers: {concurrency: 2.5}\n",
    /containers\.concurrency: must be a whole number \(line 2, column 27: 2\.5\)$/m,
  ],
  [
    "host port written as a number",
    "network: {hostPorts: [3142]}\n",
    /network\.hostPorts\.0: must be tcp\/PORT or udp\/PORT, e.g. tcp\/3142 \(line 2, column 23: 3142; write tcp\/3142 or udp\/3142\)$/m,
  ],
  [
    "a number in quotes",
    "containers: {count: '3'}\n",
    /containers\.count: must be a number \(line 2, column 21: "3"; YAML read it as a string: leave out the quotes\)$/m,
  ],
  // YAML's own errors in our words, each with its place once.
  [
    "two YAML documents",
    "lab: a\n---\nlab: b\n",
    /^ {2}- YAML syntax: a config is one YAML document, and a second one starts here: remove this "---" and what follows, or put it in a file of its own \(line 3, column 1\)$/m,
  ],
  [
    "tab as indentation",
    "network:\n\tbridge: a\n",
    /^ {2}- YAML syntax: a tab indents this line: YAML indents with spaces only \(line 3, column 1\)$/m,
  ],
  [
    "a key indented deeper than its mapping",
    "network:\n  bridge: a\n   chain: b\n",
    /^ {2}- YAML syntax: a key cannot start here: .* \(line 3, column 11\)\n$/m,
  ],
  [
    "alias to no anchor",
    "lab: *x\n",
    /YAML syntax: \*x names no anchor \(&x\) above it \(line 2, column 6\)/,
  ],
  [
    "a key that is a list",
    "? [a]\n: b\n",
    /YAML syntax: a key must be a name, not a list or a mapping \(line 2, column 3\)/,
  ],
  // Names the lab's network must not take.
  [
    "chain a built-in chain",
    "network: {chain: INPUT}\n",
    /network\.chain: must not be a built-in chain \(INPUT, OUTPUT, FORWARD, PREROUTING, POSTROUTING\)/,
  ],
  [
    "chain the nat table's built-in",
    "network: {chain: POSTROUTING}\n",
    /network\.chain: must not be a built-in chain/,
  ],
  [
    "bridge named like an Ethernet device",
    "network: {bridge: eth0}\n",
    /network\.bridge: must not name a network device/,
  ],
  [
    "bridge named like a predictable NIC name",
    "network: {bridge: enp0s3}\n",
    /network\.bridge: must not name a network device/,
  ],
  ["bridge lo", "network: {bridge: lo}\n", /network\.bridge: must not name a network device/],
  // The checks across keys run on the rest beside a type error (in a list, or a key required).
  [
    "checks across keys beside a wrong list item",
    "network: {hostPorts: [3142]}\ncontainers: {ipRange: [10.10.12.20, 10.10.12.10]}\n",
    /network\.hostPorts\.0: [\s\S]*containers\.ipRange: 10\.10\.12\.20 comes after 10\.10\.12\.10 \(line 3, column 23\)/,
  ],
  [
    "checks across keys beside a missing required key",
    "network: {address: 10.10.12.0/24, forwards: [{container: x, port: 22}]}\n",
    /network\.address: 10\.10\.12\.0 is the subnet's network [\s\S]*network\.forwards\.0\.hostPort: required/,
  ],
  [
    "checks across keys beside a wrong tuple item",
    "network: {address: 10.10.12.0/24}\ncontainers: {ipRange: [10.10.12.300, 10.10.12.20]}\n",
    /network\.address: 10\.10\.12\.0 is the subnet's network [\s\S]*containers\.ipRange\.0: must be an IPv4 address/,
  ],
  // ...and say nothing where they would judge the default of a key found wrong.
  [
    "a wrong address: the containers are not judged against the default subnet",
    "network: {address: 10.20.0.1}\ncontainers: {ipRange: [10.20.0.10, 10.20.0.20]}\n",
    /^(?![\s\S]*is not a host address in 10\.10\.12)[\s\S]*network\.address: must be an IPv4 address with a prefix/,
  ],
  [
    "a wrong set: a forward is not judged against the default containers",
    "containers: {sets: [{name: Web}]}\nnetwork: {address: 10.0.0.0/24, forwards: [{hostPort: 80, container: web1, port: 80}]}\n",
    /^(?![\s\S]*no container named)[\s\S]*containers\.sets\.0\.name: [\s\S]*network\.address: 10\.0\.0\.0 is the subnet's network/,
  ],
  [
    "every cycle in inventory.children",
    "inventory:\n  children:\n    a: [b]\n    b: [a]\n    c: [d]\n    d: [c]\n",
    /inventory\.children\.a: a would be a child of itself \(a → b → a\)[\s\S]*inventory\.children\.c: c would be a child of itself \(c → d → c\)/,
  ],
  // Binds and limits (config/binds.ts): what the config alone tells.
  [
    "bind of a system directory",
    "containers: {binds: [{host: /etc/ssl, container: /ssl}]}\n",
    /containers\.binds\.0\.host: \/etc\/ssl is in the system directory \/etc/,
  ],
  [
    "bind of the root directory",
    "containers: {binds: [{host: /, container: /host}]}\n",
    /containers\.binds\.0\.host: \/ is a system directory/,
  ],
  [
    "bind of the machines directory's parent",
    "containers: {machinesDir: /data/machines, binds: [{host: /data, container: /d}]}\n",
    /containers\.binds\.0\.host: \/data is or holds aplspawn's own \/data\/machines/,
  ],
  [
    "bind onto the container's /proc",
    "containers: {binds: [{host: /data/a, container: /proc/x}]}\n",
    /containers\.binds\.0\.container: \/proc\/x is where systemd-nspawn mounts/,
  ],
  [
    "bind to a relative container path, read-only not a boolean",
    "containers: {binds: [{host: /data/b, container: b, readOnly: yes please}]}\n",
    /containers\.binds\.0\.container: must be an absolute path[\s\S]*containers\.binds\.0\.readOnly/,
  ],
  [
    "one container path bound twice, by the lab and by a set",
    "containers: {binds: [{host: /data/a, container: /d}], sets: [{name: web, binds: [{host: /data/b, container: /d}]}]}\n",
    /containers\.sets\.0\.binds\.0\.container: \/d is bound twice/,
  ],
  [
    "a bind path with a colon, and one with ..",
    "containers: {binds: [{host: '/data/a:b', container: /d}, {host: /data/../etc, container: /e}]}\n",
    /containers\.binds\.0\.host: must not contain ":"[\s\S]*containers\.binds\.1\.host: must not contain "\.\."/,
  ],
  [
    "memory that is not a size, cpus 0",
    "containers: {memory: 1.5G, sets: [{name: web, memory: 8M, cpus: 0}]}\n",
    /containers\.memory: must be a size such as "512M"[\s\S]*containers\.sets\.0\.cpus/,
  ],
  ["memory too small to boot", "containers: {memory: 8M}\n", /containers\.memory: 8M is less than 32M/],
  // A file the config names, placed where the config names it.
  [
    "playbook that does not exist",
    "provision: {playbook: /nonexistent/site.yml}\n",
    /provision\.playbook: \/nonexistent\/site\.yml does not exist \(line 2, column 23\)$/m,
  ],
];

/** The problems a config is refused with (fails when it is accepted). */
export function problems(text: string): string[] {
  try {
    parseConfig(text, "t.yaml");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail("the config was accepted");
}
