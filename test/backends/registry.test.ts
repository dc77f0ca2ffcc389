/**
 * Backends by URL (backends/registry.ts): which URLs open which store, what
 * a bad one says (ERR_BAD_URL, never a password), that `--root DIR` and
 * `level://DIR` are the same store, that `memory:` stores are separate, and
 * how `FETCH_CACHE_STORE` and `FETCH_CACHE_ROOT` combine with the options.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { levelUrl, parseStoreUrl } from '../../src/backends/registry.js';
import { openCache, storeUrl } from '../../src/cache.js';
import { isFetchCacheError } from '../../src/errors.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc registry %20 é-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function refusal(text: string): string {
  try {
    parseStoreUrl(text);
  } catch (e) {
    expect(isFetchCacheError(e, 'ERR_BAD_URL')).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`'${text}' was accepted`);
}

describe('store URLs', () => {
  it('accepts level:///abs/root, memory: and postgres://, and refuses the rest with ERR_BAD_URL', () => {
    expect(parseStoreUrl('level:///var/cache/fc').protocol).toBe('level:');
    expect(parseStoreUrl('level:/var/cache/fc').protocol).toBe('level:');
    expect(parseStoreUrl('memory:').protocol).toBe('memory:');
    expect(refusal('level://host/var/cache')).toMatch(/absolute path: level:\/\/\/abs\/root/);
    expect(refusal('level:relative/dir')).toMatch(/absolute path/);
    expect(refusal('level:///x?cache=1')).toMatch(/absolute path/);
    expect(refusal('memory:other')).toMatch(/nothing after the scheme/);
    expect(parseStoreUrl('postgres://fc@db.example:5432/cache').protocol).toBe('postgres:');
    expect(parseStoreUrl('postgresql://db.example/cache?search_path=fc').protocol).toBe('postgresql:');
    expect(refusal('postgres://db.example/cache#x')).toMatch(/no #fragment/);
    expect(refusal('redis://localhost')).toMatch(
      /no backend for 'redis:' \(level:, memory:, postgres:, postgresql:\)/,
    );
    expect(refusal('/var/cache/fc')).toMatch(/not a URL/);
  });

  it('never repeats a password', () => {
    const message = refusal('mysql://fc:hunter2@db.example/cache');
    expect(message).not.toContain('hunter2');
    expect(message).toContain('mysql://fc:***@db.example/cache');
  });

  it('a root and its level: URL are the same store, whatever its path holds', async () => {
    const root = join(tempDir(), 'a b%c');
    const url = levelUrl(root);
    expect(url).toMatch(/^level:\/\/\/.*a%20b%25c$/);
    const byRoot = await openCache({ root });
    await byRoot.fetchIndex.put('k', 'written by root');
    expect(byRoot.root).toBe(root);
    await byRoot.close();
    const byUrl = await openCache({ store: url });
    expect(byUrl.root).toBe(root);
    expect(await byUrl.fetchIndex.get('k')).toBe('written by root');
    await byUrl.close();
  });

  it('memory: stores have no root and share nothing', async () => {
    const a = await openCache({ store: 'memory:' });
    const b = await openCache({ memory: true });
    await a.fetchIndex.put('k', 'a');
    expect(a.root).toBeUndefined();
    expect(await b.fetchIndex.get('k')).toBeUndefined();
    await a.close();
    await b.close();
  });

  it('store > memory > root > FETCH_CACHE_STORE > FETCH_CACHE_ROOT > the default root', () => {
    const env = { FETCH_CACHE_STORE: 'memory:', FETCH_CACHE_ROOT: '/r', HOME: '/home/u' };
    expect(storeUrl({ store: 'level:///s', env })).toBe('level:///s');
    expect(storeUrl({ memory: true, env })).toBe('memory:');
    expect(storeUrl({ root: '/given', env })).toBe('level:///given');
    expect(storeUrl({ env })).toBe('memory:');
    expect(storeUrl({ env: { FETCH_CACHE_ROOT: '/r' } })).toBe('level:///r');
    expect(storeUrl({ env: { HOME: '/home/u' } })).toBe('level:///home/u/.cache/fetch-cache');
    expect(() => storeUrl({ store: 'memory:', root: '/r' })).toThrow(TypeError);
  });

  it('opening a bad URL changes nothing and says why', async () => {
    const e = await openCache({ store: 'level://nohost/x' }).catch((x: unknown) => x);
    expect(isFetchCacheError(e, 'ERR_BAD_URL')).toBe(true);
  });
});
