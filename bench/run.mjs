/**
 * All benchmarks in one command: `npm run bench`. Inputs are generated once
 * into .bench-work/ (or $BENCH_WORK) and reused by later runs.
 */

import { join } from 'node:path';
import { benchHashPath } from './hash-path.mjs';
import { REPO } from './lib.mjs';
import { benchStore } from './store.mjs';

const work = process.env.BENCH_WORK ?? join(REPO, '.bench-work');
benchHashPath(work);
await benchStore(work);
