/**
 * The synchronizer end to end on loopback upstreams (test/lock/world.ts):
 * a manifest with every pin type resolves; the same lock comes back byte for
 * byte offline with every server stopped; `update` follows a new commit and a
 * new tag; unchanged pins cost no request; removed pins are pruned; a changed
 * entry is re-resolved; one failing pin fails the run naming it; checkLock
 * catches a tampered hash; a locked, cached pin resolves with no network.
 */

import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { checkLock } from '../../src/lock/check.js';
import { formatLockfile, type Lockfile } from '../../src/lock/lockfile.js';
import { parseManifest } from '../../src/lock/manifest.js';
import { resolvePin } from '../../src/lock/resolve.js';
import { synchronize } from '../../src/lock/sync.js';
import { BASE_TIME, git } from '../helpers/git-repos.js';
import { type PinWorld, startPinWorld, worldManifest } from './world.js';

let w: PinWorld;
let cacheRoot: string;
let cache: Cache;
let first: Lockfile;

const requests = () => w.http.requests() + w.git.requests.length;

beforeAll(async () => {
  w = await startPinWorld();
  cacheRoot = mkdtempSync(join(w.tmp, 'cache-'));
  cache = await openCache({ root: cacheRoot });
});

afterAll(async () => {
  await cache?.close();
  await w?.close();
});

describe('synchronize', () => {
  it('resolves every pin type into a lock with the right hash kinds', async () => {
    const manifest = parseManifest(worldManifest(w));
    const { lock, report } = await synchronize(manifest, undefined, { cache, concurrency: 3 });
    first = lock;
    expect(report.added).toEqual([
      'data',
      'hello',
      'main-file',
      'main-http',
      'pkg',
      'widget',
      'widget-rel',
      'widget-tag',
    ]);
    const p = lock.pins;
    expect(p.hello).toMatchObject({ type: 'url', hash: expect.stringMatching(/^sha256-/) });
    expect(p.hello!.narHash).toBeUndefined();
    expect(p.data).toMatchObject({ type: 'url', unpack: true, narHash: expect.stringMatching(/^sha256-/) });
    expect(p.pkg!.storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
    expect(p.pkg!.lastModified).toBe(1_600_000_005);
    expect(p['main-http']).toMatchObject({
      ref: 'refs/heads/main',
      rev: git(w.repos.main, ['rev-parse', 'main']),
      revCount: 56,
    });
    expect(p['main-file']).toMatchObject({
      ref: 'refs/heads/feature',
      rev: git(w.repos.main, ['rev-parse', 'feature']),
    });
    // ^1.0 with prefix v: 1.1.0 (annotated, peeled); 1.2.0-rc.1 is a prerelease, 2.0.0 out of range.
    expect(p['widget-tag']).toMatchObject({
      ref: 'refs/tags/v1.1.0',
      rev: git(w.widget, ['rev-parse', 'v1.1.0^{commit}']),
    });
    expect(p['widget-rel']).toMatchObject({
      ref: 'refs/tags/v2.0.0',
      rev: git(w.widget, ['rev-parse', 'v2.0.0']),
    });
    const head = git(w.widget, ['rev-parse', 'main']);
    expect(p.widget).toMatchObject({ owner: 'acme', repo: 'widget', ref: 'refs/heads/main', rev: head });
    expect(p.widget!.url).toBe(`${w.http.base}/acme/widget/archive/${head}.tar.gz`);
    // The github archive and a git fetch of the same commit agree (no export-ignore in the widget).
    const viaGit = await synchronize(
      parseManifest(`[pins.w]\ntype = "git"\nurl = "file://${w.widget}"\nref = "main"\n`),
      undefined,
      { cache },
    );
    expect(viaGit.lock.pins.w!.narHash).toBe(p.widget!.narHash);
  });

  it('a second lock run keeps everything, with no request', async () => {
    const before = requests();
    const { lock, report, changed } = await synchronize(parseManifest(worldManifest(w)), first, { cache });
    expect(changed).toBe(false);
    expect(report.unchanged).toHaveLength(8);
    expect(formatLockfile(lock)).toBe(formatLockfile(first));
    expect(requests()).toBe(before);
  });

  it('a locked pin whose store path is cached resolves with no network', async () => {
    const before = requests();
    const manifest = parseManifest(worldManifest(w));
    for (const name of ['pkg', 'widget', 'main-http']) {
      const got = await resolvePin(manifest.pins.get(name)!, { cache, locked: first.pins[name] });
      expect(got).toBe(first.pins[name]);
    }
    expect(requests()).toBe(before);
  });

  it('checkLock passes the fresh lock and catches a tampered hash', async () => {
    const ok = await checkLock(first, { cache, offline: true });
    expect(ok.ok).toBe(true);
    // Offline: everything came from the cache; git pins are re-read from the local mirror / repository.
    expect(ok.pins.filter((x) => !x.cached).map((x) => x.name)).toEqual(['main-file', 'main-http']);
    const pkg = first.pins.pkg!;
    const otherHash = first.pins.data!.narHash!;
    const tampered: Lockfile = { ...first, pins: { ...first.pins, pkg: { ...pkg, narHash: otherHash } } };
    const bad = await checkLock(tampered, { cache });
    expect(bad.ok).toBe(false);
    expect(bad.pins.filter((x) => x.status !== 'ok').map((x) => x.name)).toEqual(['pkg']);
    // Hash and store path both forged consistently: the content itself gives it away.
    const forged: Lockfile = {
      ...first,
      pins: { ...first.pins, pkg: { ...pkg, narHash: otherHash, storePath: first.pins.data!.storePath } },
    };
    const again = await checkLock(forged, { cache });
    expect(again.pins.find((x) => x.name === 'pkg')).toMatchObject({
      status: 'differs',
      expected: otherHash,
      actual: pkg.narHash,
    });
  });

  it('re-resolves offline with every server stopped to the same bytes', async () => {
    await w.stop();
    await cache.close();
    cache = await openCache({ root: cacheRoot });
    const { lock } = await synchronize(parseManifest(worldManifest(w)), undefined, { cache, offline: true });
    expect(formatLockfile(lock)).toBe(formatLockfile(first));
    const updated = await synchronize(parseManifest(worldManifest(w)), first, {
      cache,
      offline: true,
      update: true,
    });
    expect(formatLockfile(updated.lock)).toBe(formatLockfile(first));
    // A pin never seen is a coded offline error naming the pin.
    const extra = `\n[pins.never]\ntype = "url"\nurl = "http://127.0.0.1:9/never.txt"\n`;
    const e = await synchronize(parseManifest(worldManifest(w, extra)), first, {
      cache,
      offline: true,
    }).catch((x) => x);
    expect(e.code).toBe('ERR_OFFLINE');
    expect(e.message).toMatch(/^pin 'never': /);
  });
});

describe('update, prune, changed entries', () => {
  let lock: Lockfile;
  let world: PinWorld;
  let c: Cache;

  beforeAll(async () => {
    world = await startPinWorld();
    c = await openCache({ memory: true });
    lock = (await synchronize(parseManifest(worldManifest(world)), undefined, { cache: c })).lock;
  });
  afterAll(async () => {
    await c?.close();
    await world?.close();
  });

  it('update follows a new commit and a new tag; lock alone does not', async () => {
    const mainRev = world.commit(world.repos.main, 'NEWS', 'news\n', BASE_TIME + 99_000);
    const widgetRev = world.commit(world.widget, 'widget.txt', 'widget 1.3.0\n', BASE_TIME + 99_000);
    world.tag(world.widget, 'v1.3.0');
    world.publishArchives();
    const manifest = parseManifest(worldManifest(world));
    const plain = await synchronize(manifest, lock, { cache: c });
    expect(plain.changed).toBe(false);
    const some = await synchronize(manifest, lock, { cache: c, update: ['main-http'] });
    expect(some.report.updated).toEqual(['main-http']);
    expect(some.lock.pins['main-http']).toMatchObject({ rev: mainRev, revCount: 57 });
    const all = await synchronize(manifest, some.lock, { cache: c, update: true });
    expect(all.report.updated).toEqual(['widget', 'widget-tag']);
    expect(all.report.unchanged).toEqual(['data', 'hello', 'main-file', 'main-http', 'pkg', 'widget-rel']);
    expect(all.lock.pins['widget-tag']).toMatchObject({ ref: 'refs/tags/v1.3.0', rev: widgetRev });
    expect(all.lock.pins.widget).toMatchObject({
      rev: widgetRev,
      url: expect.stringContaining(`/archive/${widgetRev}.tar.gz`),
    });
    // 2.0.0 is still the newest for "*".
    expect(all.lock.pins['widget-rel']!.ref).toBe('refs/tags/v2.0.0');
    lock = all.lock;
  });

  it('update of an unknown pin is ERR_NOT_FOUND', async () => {
    const e = await synchronize(parseManifest(worldManifest(world)), lock, {
      cache: c,
      update: ['nope'],
    }).catch((x) => x);
    expect(e.code).toBe('ERR_NOT_FOUND');
  });

  it('prunes removed pins and re-resolves a changed entry only', async () => {
    const text = worldManifest(world)
      .replace(/\[pins\.hello\][^[]*/, '')
      .replace('ref = "feature"', 'ref = "main"');
    const before = world.http.requests() + world.git.requests.length;
    const r = await synchronize(parseManifest(text), lock, { cache: c });
    expect(r.report).toEqual({
      added: [],
      updated: ['main-file'],
      unchanged: ['data', 'main-http', 'pkg', 'widget', 'widget-rel', 'widget-tag'],
      removed: ['hello'],
    });
    expect(r.lock.pins.hello).toBeUndefined();
    expect(r.lock.pins['main-file']).toMatchObject({
      ref: 'refs/heads/main',
      rev: git(world.repos.main, ['rev-parse', 'main']),
    });
    // main-file is file://: nothing else was asked for.
    expect(world.http.requests() + world.git.requests.length).toBe(before);
  });

  it('one failing pin fails the run, naming it and keeping its code', async () => {
    const extra = `\n[pins.broken]\ntype = "tarball"\nurl = "${world.http.url('/missing.tar.gz')}"\n`;
    const e = await synchronize(parseManifest(worldManifest(world, extra)), lock, { cache: c }).catch(
      (x) => x,
    );
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/^pin 'broken': .*404/);
  });
});
