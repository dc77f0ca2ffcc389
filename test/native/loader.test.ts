/**
 * The addon's one loader (src/native/index.ts). Where `npm ci` built the addon (CI requires it:
 * .ci/run stops when build/Release/fetch_cache_native.node is missing) every capability loads from
 * it, file sending on Linux only (binding.gyp compiles send-file.cc there alone), whatever
 * FETCH_CACHE_NO_NATIVE says for the rest of the run; and FETCH_CACHE_NO_NATIVE=1 turns every
 * capability off, which the whole suite also runs with.
 */

import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ADDON_PATH, fileSending, gitPack, narDump } from '../../src/native/index.js';

const built = existsSync(ADDON_PATH);

it('a built addon gives every capability, file sending on Linux only', (ctx) => {
  if (!built) ctx.skip(`no ${ADDON_PATH} here (the addon was not built)`);
  const on = {}; // the addon not turned off, even in a run with FETCH_CACHE_NO_NATIVE=1
  expect(narDump(on)).toBeDefined();
  expect(gitPack(on)).toBeDefined();
  expect(fileSending(on) !== undefined).toBe(process.platform === 'linux');
});

it('FETCH_CACHE_NO_NATIVE=1 turns every capability off', () => {
  const off = { FETCH_CACHE_NO_NATIVE: '1' };
  expect([narDump(off), gitPack(off), fileSending(off)]).toEqual([undefined, undefined, undefined]);
});
