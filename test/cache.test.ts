/**
 * `openCache()`: root resolution, the versioned on-disk layout, and a clear
 * error naming the owner when another process holds the database and does not serve it; otherwise
 * a second process reaches the database through the first (storage/shared-db.ts).
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LAYOUT_VERSION, openCache, resolveRoot } from '../src/cache.js';
import { isFetchCacheError } from '../src/errors.js';

const dirs: string[] = [];
function tempRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-cache-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('resolveRoot', () => {
  it('prefers --root, then FETCH_CACHE_ROOT, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(resolveRoot('/a', { FETCH_CACHE_ROOT: '/b' })).toBe('/a');
    expect(resolveRoot(undefined, { FETCH_CACHE_ROOT: '/b', XDG_CACHE_HOME: '/c' })).toBe('/b');
    expect(resolveRoot(undefined, { XDG_CACHE_HOME: '/c' })).toBe('/c/fetch-cache');
    expect(resolveRoot(undefined, { HOME: '/home/u' })).toBe('/home/u/.cache/fetch-cache');
  });
});

describe('openCache on disk', () => {
  it('writes the layout version and the store dir, and reopens', async () => {
    const root = tempRoot();
    const c = await openCache({ root });
    expect(JSON.parse(readFileSync(join(root, 'layout.json'), 'utf8'))).toEqual({
      layout: LAYOUT_VERSION,
      storeDir: '/nix/store',
    });
    await c.close();
    await c.close();
    const again = await openCache({ root });
    await again.close();
  });

  it('refuses an unknown layout version', async () => {
    const root = tempRoot();
    writeFileSync(join(root, 'layout.json'), '{"layout": 99}\n');
    await expect(openCache({ root })).rejects.toSatisfy((e: unknown) =>
      isFetchCacheError(e, 'ERR_STORE_VERSION'),
    );
  });

  it('refuses a layout 1 root (chunks inside the database) and says how to get going again', async () => {
    const root = tempRoot();
    writeFileSync(join(root, 'layout.json'), '{"layout": 1}\n');
    const e = await openCache({ root }).catch((x: unknown) => x);
    expect(isFetchCacheError(e, 'ERR_STORE_VERSION')).toBe(true);
    expect((e as Error).message).toMatch(/layout 1 kept chunk bytes inside the database; delete the root/);
  });

  it('lets a second process use the root through the first one', async () => {
    const root = tempRoot();
    const first = await openCache({ root });
    try {
      await first.fetchIndex.put('k', 'from the first process');
      const script = `
        import { openCache } from ${JSON.stringify(new URL('../src/cache.ts', import.meta.url).pathname)};
        const c = await openCache({ root: ${JSON.stringify(root)}, lockTimeoutMs: 300 });
        console.log(await c.fetchIndex.get('k'));
        await c.fetchIndex.put('k2', 'from the second');
        await c.close();
      `;
      expect(await runScript(script)).toBe('from the first process');
      expect(await first.fetchIndex.get('k2')).toBe('from the second');
    } finally {
      await first.close();
    }
  });

  it('names the owning process when the database is locked and nobody serves it', async () => {
    const root = tempRoot();
    await (await openCache({ root })).close();
    // A holder that takes LevelDB's lock but does not host (an older fetch-cache, say).
    const { ClassicLevel } = await import('classic-level');
    const raw = new ClassicLevel(join(root, 'db'));
    await raw.open();
    writeFileSync(join(root, 'owner.json'), JSON.stringify({ pid: process.pid, command: 'holder' }));
    try {
      const script = `
        import { openCache } from ${JSON.stringify(new URL('../src/cache.ts', import.meta.url).pathname)};
        try { await openCache({ root: ${JSON.stringify(root)}, lockTimeoutMs: 300 }); console.log('opened'); }
        catch (e) { console.log(e.code + ' ' + e.message); }
      `;
      const out = await runScript(script);
      expect(out).toMatch(/^ERR_STORE_LOCKED .*in use by pid \d+ \(holder\)/);
      expect(out).toContain(String(process.pid));
    } finally {
      await raw.close();
    }
  });
});

function runScript(script: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(text.trim()));
  });
}
