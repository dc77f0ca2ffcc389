/**
 * All benchmarks in one command: `npm run bench`. Inputs are generated once
 * into .bench-work/ (or $BENCH_WORK) and reused by later runs. Each section
 * prints its ratios against the reference tool measured in the same run.
 * `BENCH_ONLY=hash-path,store,tarball,git,lock,serve,ops,corpus,pins,scale` runs a subset.
 * Needs nix (and for `serve` and `scale`, nginx and wrk from Debian; `scale` also the
 * PostgreSQL and S3 servers the tests use, else it says it skipped).
 */

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { benchGit } from './git.mjs';
import { benchHashPath } from './hash-path.mjs';
import { REPO } from './lib.mjs';
import { benchLock } from './lock.mjs';
import { benchServe } from './serve.mjs';
import { benchStore } from './store.mjs';

const work = process.env.BENCH_WORK ?? join(REPO, '.bench-work');
const only = process.env.BENCH_ONLY?.split(',');
const want = (name) => only === undefined || only.includes(name);

if (want('hash-path')) benchHashPath(work);
if (want('store')) await benchStore(work);
if (want('tarball')) spawnSync(process.execPath, [join(REPO, 'bench/tarball.mjs')], { stdio: 'inherit' });
if (want('git')) await benchGit(work);
if (want('lock')) await benchLock(work);
if (want('serve')) await benchServe(work);
if (want('ops')) {
  const { benchOps } = await import('./ops.mjs');
  await benchOps(work);
}
if (want('corpus')) {
  const { benchCorpus } = await import('./corpus.mjs');
  await benchCorpus(work);
}
if (want('scale')) {
  const { benchScale } = await import('./scale.mjs');
  await benchScale(work);
}
if (want('pins')) {
  const { benchPins } = await import('./pins.mjs');
  await benchPins(work);
}
