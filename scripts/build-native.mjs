/**
 * npm's install step for the optional native addon (binding.gyp,
 * src/native/): builds it with the node-gyp that npm ships, against the
 * headers of the Node.js that runs this (npm's `nodedir`, else
 * `<prefix>/include/node`), so nothing is downloaded. When it cannot be built
 * (no compiler, no headers, FETCH_CACHE_NO_NATIVE_BUILD=1) the install goes
 * on and fetch-cache uses its JavaScript implementations (src/native/index.ts).
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const skip = (why) => {
  console.log(`fetch-cache: native addon not built (${why}); the JavaScript implementation is used`);
  process.exit(0);
};
if (process.env.FETCH_CACHE_NO_NATIVE_BUILD === '1') skip('FETCH_CACHE_NO_NATIVE_BUILD=1');

const prefix = dirname(dirname(process.execPath));
const gyp =
  process.env.npm_config_node_gyp ??
  join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
if (!existsSync(gyp)) skip(`node-gyp not found at ${gyp}`);
const args = [gyp, 'rebuild'];
if (!process.env.npm_config_nodedir) {
  if (!existsSync(join(prefix, 'include/node/node_api.h')))
    skip(`no Node.js headers in ${prefix}/include/node`);
  args.push(`--nodedir=${prefix}`);
}
const r = spawnSync(process.execPath, args, { cwd: repo, encoding: 'utf8' });
if (r.status !== 0) {
  const last = `${r.stderr ?? ''}${r.stdout ?? ''}`
    .trim()
    .split('\n')
    .filter((l) => /error|ERR!/i.test(l))[0];
  skip(`node-gyp failed${last ? `: ${last.trim()}` : ''}`);
}
console.log('fetch-cache: native addon built (build/Release/fetch_cache_native.node)');
