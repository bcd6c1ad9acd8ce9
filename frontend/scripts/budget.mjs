// The JavaScript the first page loads — the entry chunk and everything it imports statically, read from
// dist/.vite/manifest.json — gzipped and added up; over the budget, the build fails.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const BUDGET_KB = 350;
const dist = new URL("../dist/", import.meta.url);
const manifest = JSON.parse(readFileSync(new URL(".vite/manifest.json", dist), "utf8"));

const entries = Object.keys(manifest).filter((key) => manifest[key].isEntry);
if (entries.length === 0) {
  console.error("budget: no entry chunk in dist/.vite/manifest.json");
  process.exit(1);
}

const files = new Set();
const visit = (key) => {
  const chunk = manifest[key];
  if (!chunk || files.has(chunk.file)) return;
  files.add(chunk.file);
  (chunk.imports ?? []).forEach(visit);
};
entries.forEach(visit);

let total = 0;
for (const file of [...files].filter((name) => name.endsWith(".js")).sort()) {
  const size = gzipSync(readFileSync(new URL(file, dist)), { level: 9 }).length;
  total += size;
  console.log(`  ${(size / 1024).toFixed(1).padStart(7)} KB  ${file}`);
}

const kb = total / 1024;
console.log(`First page JavaScript: ${kb.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
if (kb > BUDGET_KB) {
  console.error(`budget: ${kb.toFixed(1)} KB is over the ${BUDGET_KB} KB budget`);
  process.exit(1);
}
