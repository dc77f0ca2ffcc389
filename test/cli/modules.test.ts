/**
 * A command loads what it needs and no more: `fetch tarball` of a `file://` URL into a fresh root, run
 * as users run it (bin/fetch-cache), loads no HTTP client (node:http, node:https, undici), no git
 * client, nothing of the server, and not the side of the shared database that only a second process
 * uses (storage/link.ts, storage/remote-level.ts). Every module resolved is listed by a resolve hook
 * registered with `--import`.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { CLI_BIN, cliBuilt } from '../helpers/cli.js';

const HOOK = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write('resolved ' + r.url + '\\n');
  return r;
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

let tmp: string;

beforeAll(() => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-modules-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

it('fetch tarball of a file:// URL loads no HTTP or git client, no server, no guest side of the database', () => {
  const archive = join(tmp, 'one.tar');
  writeFileSync(archive, tarArchive([tarMember({ name: 'one/hello', content: 'hello\n' })]));
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(REGISTER)}`,
      CLI_BIN,
      '--root',
      join(tmp, 'root'),
      'fetch',
      'tarball',
      `file://${archive}`,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source\n$/);
  const loaded = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('resolved '))
    .map((l) => l.slice('resolved '.length));
  // The hook saw the fetch itself: the list is real.
  expect(loaded.some((u) => u.endsWith('/dist/fetchers/tarball.js'))).toBe(true);
  expect(loaded.some((u) => u.endsWith('/dist/storage/db-host.js'))).toBe(true);
  const unwanted = loaded.filter((u) =>
    /^node:https?$|\/undici\/|\/dist\/fetchers\/git\/|\/dist\/server\/|\/dist\/storage\/(link|remote-level)\.js$/.test(
      u,
    ),
  );
  expect(unwanted).toEqual([]);
});
