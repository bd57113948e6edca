// Drift check: regenerates the TypeScript code into a temporary directory and compares it with the
// committed src/gen. Exits 1, naming the files, when they differ (run `npm run gen` and commit).
// Installs node_modules first (`npm ci`) when the ts-proto plugin is missing.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const committed = join(pkg, "src", "gen");

if (!existsSync(join(pkg, "node_modules", ".bin", "protoc-gen-ts_proto"))) {
  console.error("node_modules missing: npm ci");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: pkg, stdio: "inherit" });
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...listFiles(path));
    else found.push(path);
  }
  return found;
}

const fresh = mkdtempSync(join(tmpdir(), "automations-ts-gen-"));
try {
  execFileSync(process.execPath, [join(here, "gen.mjs"), fresh], { stdio: ["ignore", "ignore", "inherit"] });
  const want = new Map(listFiles(fresh).map((p) => [relative(fresh, p), readFileSync(p)]));
  const have = new Map(listFiles(committed).map((p) => [relative(committed, p), readFileSync(p)]));
  const drift = [];
  for (const [name, text] of want) {
    if (!have.has(name)) drift.push(`missing: src/gen/${name}`);
    else if (!have.get(name).equals(text)) drift.push(`differs: src/gen/${name}`);
  }
  for (const name of have.keys()) if (!want.has(name)) drift.push(`stale: src/gen/${name}`);
  if (drift.length > 0) {
    console.error(drift.join("\n"));
    console.error("clients/node/src/gen drifted from protos/: run 'npm run gen' in clients/node and commit");
    process.exit(1);
  }
  console.log(`clients/node/src/gen matches protos/ (${want.size} files)`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
