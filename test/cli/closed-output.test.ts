/**
 * A closed stdout ends every printing command quietly: `path-info --all | head -1` (and the same with
 * `--json`, one large write, and `stats`, `hash path`) must give `head` its line and end the CLI with
 * status 0 and nothing on stderr, never an EPIPE stack trace. Real CLI processes under bash, with
 * PIPESTATUS giving the CLI's own status; the root holds enough paths that the output outruns the pipe.
 */

import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import { CLI_MAIN, cliBuilt } from '../helpers/cli.js';

const PATHS = 1500;
let work: string;
let root: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-closed-output-'));
  root = join(work, 'root');
  const files = join(work, 'files');
  await mkdir(files);
  const cache = await openCache({ root });
  for (let i = 0; i < PATHS; i++) {
    const f = join(files, `file-${i}`);
    await writeFile(f, `file ${i}\n`);
    await addPath(cache, f, { flat: true });
  }
  await cache.close();
}, 120_000);
afterAll(() => rm(work, { recursive: true, force: true }));

/** `fetch-cache ARGS | head -c N` under bash: the CLI's status, what head got, the CLI's stderr. */
function piped(args: string, head: string) {
  const script = `"${process.execPath}" "${CLI_MAIN}" --root "${root}" ${args} 2>"${work}/stderr" | ${head}; echo "status=\${PIPESTATUS[0]}" >&2`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  const stderr = spawnSync('cat', [`${work}/stderr`], { encoding: 'utf8' }).stdout;
  return { out: r.stdout, status: /status=(\d+)/.exec(r.stderr)?.[1], stderr };
}

describe.runIf(cliBuilt())('a closed stdout', () => {
  for (const [args, head] of [
    ['path-info --all', 'head -1'],
    ['path-info --all', 'head -c 1'],
    ['--json path-info --all', 'head -c 100'],
    ['stats', 'head -c 1'],
  ] as const) {
    it(`${args} | ${head}: status 0, nothing on stderr`, () => {
      for (let round = 0; round < 3; round++) {
        const r = piped(args, head);
        expect(r.out.length).toBeGreaterThan(0);
        expect(r.stderr).toBe('');
        expect(r.status).toBe('0');
      }
    });
  }
});
