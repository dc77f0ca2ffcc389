/**
 * Bundles the CLI (dist/cli/main.js and the modules it reaches) into dist/cli-bundle/, one file per
 * lazily imported part, for `bin/fetch-cache` to start.
 *
 * Why: Node resolves, loads and links each ES module on its own, and the ~100 small modules a command
 * such as `hash path` reaches cost ~25 ms of a ~90 ms start that way. Bundled with code splitting, a
 * command loads a few files and still loads nothing it does not use (each dynamic `import()` of ours
 * stays a separate chunk). Packages stay external, so native addons and lazy `require`s work as in
 * dist/; the bundle sits two levels below the package root like dist/fs/, so paths such as
 * `../../build/Release/…` resolve the same. Worker threads' modules are entries of their own, beside
 * the chunk that starts them, as in dist/ (`new URL('./hash-worker.js', import.meta.url)`). The
 * library (`exports`) stays the unbundled dist/.
 *
 * `build-id` (a hash of the bundle's files) names the bundle for the answers `bin/fetch-cache` gives
 * without starting Node (src/answers.ts): answers one build wrote are never given by another.
 */

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/cli-bundle`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: `${root}dist/cli/main.js`, 'hash-worker': `${root}dist/fs/hash-worker.js` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
const id = createHash('sha256');
for (const name of readdirSync(outdir).sort())
  id.update(name)
    .update('\0')
    .update(readFileSync(`${outdir}/${name}`));
writeFileSync(`${outdir}/build-id`, `${id.digest('hex').slice(0, 16)}\n`);
