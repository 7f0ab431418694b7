#!/usr/bin/env node
// The product's size and its longest functions, for the architecture reports (issue #34): lines of
// code (not blank, not only a comment) per top-level folder, and the N longest functions with
// their place. Reads the TypeScript sources with the compiler's own parser; runs nothing.
//
//   node scripts/code-stats.mjs [--top N] [--root DIR]
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import ts from "typescript";

const { values } = parseArgs({
  options: { top: { type: "string", default: "10" }, root: { type: "string", default: process.cwd() } },
});
const root = values.root;
const PRODUCT = ["cli", "workflows", "tasks", "src", "config"];

function* sources(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) yield p;
  }
}

/** Lines that hold code: not blank, and not inside or made only of a comment. */
function codeLines(text) {
  let n = 0;
  let inBlock = false;
  for (const raw of text.split("\n")) {
    let line = raw.trim();
    if (inBlock) {
      const end = line.indexOf("*/");
      if (end < 0) continue;
      inBlock = false;
      line = line.slice(end + 2).trim();
    }
    if (line.startsWith("/*")) {
      const end = line.indexOf("*/", 2);
      if (end < 0) {
        inBlock = true;
        continue;
      }
      line = line.slice(end + 2).trim();
    }
    if (line && !line.startsWith("//")) n++;
  }
  return n;
}

/** A function's name as a reader would look it up: its own, its variable's, or its property's. */
function nameOf(node) {
  if (node.name) return node.name.getText();
  const p = node.parent;
  if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))
    return p.name.getText();
  if (ts.isCallExpression(p))
    return `(argument of ${p.expression.getText().replace(/\s+/g, "").slice(0, 40)})`;
  return "(anonymous)";
}

const perDir = new Map();
const functions = [];
for (const dir of PRODUCT) {
  let lines = 0;
  let files = 0;
  for (const file of sources(join(root, dir))) {
    const text = readFileSync(file, "utf8");
    lines += codeLines(text);
    files++;
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (
        ts.isFunctionDeclaration(node) ||
        ts.isMethodDeclaration(node) ||
        ts.isArrowFunction(node) ||
        ts.isFunctionExpression(node)
      ) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
        functions.push({
          where: `${relative(root, file)}:${start}`,
          name: nameOf(node),
          lines: end - start + 1,
        });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  perDir.set(dir, { files, lines });
}

let total = 0;
for (const [dir, { files, lines }] of perDir) {
  console.log(
    `${dir.padEnd(10)} ${String(files).padStart(4)} files ${String(lines).padStart(6)} lines of code`,
  );
  total += lines;
}
console.log(`${"product".padEnd(10)} ${" ".repeat(10)} ${String(total).padStart(6)} lines of code`);
console.log(`\n${values.top} longest functions (lines, start to end):`);
for (const f of functions.sort((a, b) => b.lines - a.lines).slice(0, Number(values.top)))
  console.log(`${String(f.lines).padStart(5)}  ${f.name}  ${f.where}`);
