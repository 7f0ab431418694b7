// SHA256SUMS files as sha256sum and mkosi write them: "<digest>  <name>" (text mode) or
// "<digest> *<name>" (binary mode), and the BSD form "SHA256 (<name>) = <digest>".

/** One line of a SHA256SUMS file. */
export interface ChecksumEntry {
  digest: string;
  name: string;
}

/** Parse a SHA256SUMS text; lines that are not checksums (comments, blank, PGP armour) are skipped. */
export function parseSha256Sums(text: string): ChecksumEntry[] {
  const out: ChecksumEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    // GNU: a leading backslash means the name has \\ and \n escaped.
    const gnu = /^(\\?)([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (gnu) {
      const name = gnu[1] ? gnu[3]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)) : gnu[3]!;
      out.push({ digest: gnu[2]!.toLowerCase(), name: normalize(name) });
      continue;
    }
    const bsd = /^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$/.exec(line);
    if (bsd) out.push({ digest: bsd[2]!.toLowerCase(), name: normalize(bsd[1]!) });
  }
  return out;
}

const normalize = (name: string) => name.replace(/^(\.\/)+/, "");

/** The digest listed for `name` (a file name, matched without directories), or undefined. */
export function findChecksum(text: string, name: string): string | undefined {
  const entries = parseSha256Sums(text);
  const exact = entries.find((e) => e.name === name);
  if (exact) return exact.digest;
  return entries.find((e) => e.name.split("/").pop() === name)?.digest;
}

/** A SHA256SUMS line in mkosi's (binary mode) form. */
function formatSha256SumsLine(digest: string, name: string): string {
  return `${digest} *${name}\n`;
}

/** `existing` (a SHA256SUMS text, possibly empty) with `name`'s line added or replaced. */
export function upsertSha256Sums(existing: string, digest: string, name: string): string {
  const keep = existing
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .filter((l) => {
      const [e] = parseSha256Sums(l);
      return !e || e.name !== name;
    });
  return `${[...keep, formatSha256SumsLine(digest, name).trimEnd()].join("\n")}\n`;
}
