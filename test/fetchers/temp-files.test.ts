/**
 * Temporary files stay inside the cache root and are cleaned up: the zip spool of a tarball fetch lives
 * in `<root>/tmp/`, never in the OS temp dir; it is removed when the fetch ends, failed or not; a fetch
 * killed with SIGKILL leaves it behind, and the next command on the root (here `gc`) removes it, while a
 * command run beside a live fetch leaves that fetch's spool alone. Real CLI processes, a real server on
 * 127.0.0.1 that sends half a zip and then waits. The git directory a memory cache keeps in the OS temp
 * dir is removed at exit, or, after a SIGKILL, by the next process that makes one.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { zipArchive } from '../helpers/archives.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { startCli } from '../helpers/processes.js';

const ZIP = zipArchive([
  { name: 'src/big.bin', content: randomBytes(3 << 20) },
  { name: 'src/a.txt', content: 'a' },
]);
const BAD_ZIP = zipArchive([{ name: 'src/a.txt', content: 'a', crc: 1234 }]);

let server: TestServer;
let work: string;
beforeAll(async () => {
  server = await startServer({
    '/good.zip': { body: ZIP },
    '/bad.zip': { body: BAD_ZIP },
    // The first MiB at once, then nothing for a minute: the fetch sits there with its spool half written.
    '/stuck.zip': { body: ZIP, chunkSize: 1 << 20, slowMs: 60_000 },
  });
  work = await mkdtemp(join(tmpdir(), 'fc-temp-files-'));
});
afterAll(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

describe('the zip spool', () => {
  it('is removed after a fetch that worked and after one that failed; the OS temp dir is never used', async () => {
    const root = join(work, 'lib-root');
    const osTmp = join(work, 'os-tmp');
    await mkdir(osTmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = osTmp;
    try {
      const cache = await openCache({ root });
      const fetcher = new Fetcher(cache, { http: { attempts: 1 } });
      await fetcher.fetch({ type: 'tarball', url: server.url('/good.zip') });
      const bad = await fetcher.fetch({ type: 'tarball', url: server.url('/bad.zip') }).catch((e) => e);
      expect(bad.code).toBe('ERR_BAD_ARCHIVE');
      await cache.close();
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(list(join(root, 'tmp'))).toEqual([]);
    expect(list(osTmp)).toEqual([]);
  });

  it.runIf(cliBuilt())(
    'of a killed fetch is removed by the next command, never while its process lives',
    async () => {
      const root = join(work, 'cli-root');
      const osTmp = join(work, 'cli-os-tmp');
      await mkdir(osTmp);
      const fetch = startCli(['--root', root, '--quiet', 'fetch', 'tarball', server.url('/stuck.zip')], {
        TMPDIR: osTmp,
      });
      try {
        // Wait until the first MiB is spooled.
        let spool: string | undefined;
        for (let i = 0; i < 400 && spool === undefined; i++) {
          for (const d of list(join(root, 'tmp'))) {
            const f = join(root, 'tmp', d, 'archive.zip');
            if (existsSync(f) && statSync(f).size >= 1 << 20) spool = join(root, 'tmp', d);
          }
          if (spool === undefined) await new Promise((r) => setTimeout(r, 50));
        }
        expect(spool, 'a spool under <root>/tmp').toBeDefined();
        expect(list(osTmp)).toEqual([]);

        // Another command on the root while the fetch lives: the spool stays.
        const beside = await runCli(['--root', root, 'stats']);
        expect(beside.code, beside.stderr).toBe(0);
        expect(existsSync(spool!)).toBe(true);

        await fetch.stop('SIGKILL');
        expect(existsSync(spool!)).toBe(true);
        const gc = await runCli(['--root', root, 'gc']);
        expect(gc.code, gc.stderr).toBe(0);
        expect(existsSync(spool!)).toBe(false);
        expect(list(join(root, 'tmp'))).toEqual([]);
      } finally {
        await fetch.stop('SIGKILL');
      }
    },
  );
});

describe.runIf(cliBuilt())('the git directory of a memory cache (in the OS temp dir)', () => {
  const REPO_CACHE = fileURLToPath(new URL('../../dist/fetchers/git/repo-cache.js', import.meta.url));
  /** A process that makes its git directory, prints it, and exits or (`hang`) waits to be killed. */
  const maker = (osTmp: string, hang: boolean) =>
    spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { gitRoot } from ${JSON.stringify(REPO_CACHE)};
         console.log(gitRoot(undefined));
         ${hang ? 'setInterval(() => {}, 1000);' : ''}`,
      ],
      { env: { ...process.env, TMPDIR: osTmp }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
  const printed = async (child: ReturnType<typeof spawn>): Promise<string> => {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    return line.toString().trim();
  };

  it("is removed at exit; a killed process's by the next process that makes one, never a live one's", async () => {
    const osTmp = join(work, 'git-os-tmp');
    await mkdir(osTmp);
    // Of our name but without a pid (an older version's, or anyone's): whether it is in use cannot be told.
    const unnamed = join(osTmp, 'fetch-cache-git-AbCdEf');
    await mkdir(unnamed);
    const killed = maker(osTmp, true);
    const live = maker(osTmp, true);
    try {
      const [killedDir, liveDir] = [await printed(killed), await printed(live)];
      expect(existsSync(killedDir) && existsSync(liveDir)).toBe(true);
      killed.kill('SIGKILL');
      await once(killed, 'exit');
      expect(existsSync(killedDir)).toBe(true);

      const next = maker(osTmp, false);
      const nextDir = await printed(next);
      await once(next, 'exit');
      expect(existsSync(killedDir)).toBe(false);
      expect(existsSync(nextDir)).toBe(false);
      expect(existsSync(liveDir)).toBe(true);
      expect(existsSync(unnamed)).toBe(true);
    } finally {
      killed.kill('SIGKILL');
      live.kill('SIGKILL');
    }
  });
});
