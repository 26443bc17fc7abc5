// Run by `carapace skill build` (image/src/skill_build/js.rs) with Node.js: componentize-js's
// componentize() on the skill's glue module. A failure prints its message alone (it carries the
// skill's own error, such as a SyntaxError at scripts/tools.js:3:1), without node's stack.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [packageDir, sourcePath, witPath, worldName, out] = process.argv.slice(2);
try {
  const api = pathToFileURL(join(packageDir, "src", "componentize.js")).href;
  const { componentize } = await import(api);
  const { component } = await componentize({
    sourcePath,
    witPath,
    worldName,
    // No wasi:http (fetch() and the fetch event): a skill's HTTP goes through the skill
    // world's import, which the box checks. stdio (stderr for crash reports), random numbers
    // and clocks stay; the skill host gives those.
    disableFeatures: ["http", "fetch-event"],
  });
  await writeFile(out, component);
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
