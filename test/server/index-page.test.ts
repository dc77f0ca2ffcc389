/**
 * The index page and the per-path page in a real browser: headless Chromium
 * (Debian `chromium`) driven by playwright-core. In CI a missing browser is a
 * failure, not a skip. Besides added files, the cache holds a tarball fetched
 * from a loopback server, a git tree fetched from a local repository, a pin
 * resolved by `synchronize` for a named lockfile, and an uploaded-style path
 * with a reference: the page shows where each came from (URL, git URL and
 * rev, pin names), when it was fetched and last used, finds them by those,
 * and each path's page shows its narinfo fields, signatures, references and
 * files as a tree. A screenshot of each page goes to test-output/.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fetcher } from '../../src/fetchers/base.js';
import type { FetchResult } from '../../src/fetchers/types.js';
import { addPath } from '../../src/fs/add.js';
import { parseManifest } from '../../src/lock/manifest.js';
import { synchronize } from '../../src/lock/sync.js';
import { formatPublicKey } from '../../src/nix/signing.js';
import { storePathBaseName, storePathHashPart } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { BASE_TIME, FastImport, importRepo } from '../helpers/git-repos.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { addSampleTree, type Harness, startHarness } from './harness.js';

const CHROMIUM = '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium for the index page test`);
}

/** Screenshots land here (gitignored), one file per page, paths printed. */
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const LOCKFILE = '/home/user/project/pins.lock';

let h: Harness;
let upstream: TestServer;
let browser: Browser;
const names: string[] = [];
let tarball: FetchResult;
let gitTree: FetchResult;
let gitRev: string;
let pinned: string;
let withRefs: PathInfo;
let beta: PathInfo;

beforeAll(async () => {
  if (!haveBrowser) return;
  h = await startHarness({ priority: 23 });
  names.push(storePathBaseName((await addSampleTree(h, 'alpha-tree', 1000)).storePath));
  for (const n of ['beta-notes.txt', 'gamma-<b>odd</b>.txt']) {
    const dir = join(h.tmp, 'files');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, n.replace(/[<>/]/g, '_')), `${n}\n`);
    const info = await addPath(h.cache, join(dir, n.replace(/[<>/]/g, '_')));
    beta ??= info;
    names.push(storePathBaseName(info.storePath));
  }
  // Fetched paths: a tarball from a loopback server, a git tree, and a pin resolved for a lockfile.
  const src = join(h.tmp, 'src', 'widget-1.0');
  await mkdir(join(src, 'docs'), { recursive: true });
  await writeFile(join(src, 'README'), 'widget\n');
  await writeFile(join(src, 'docs', 'guide.md'), '# guide\n');
  const tgz = execFileSync('tar', [
    '-czf',
    '-',
    '--mtime=@1700000000',
    '-C',
    join(h.tmp, 'src'),
    'widget-1.0',
  ]);
  const other = execFileSync('tar', [
    '-czf',
    '-',
    '--mtime=@1700000001',
    '-C',
    join(h.tmp, 'src'),
    'widget-1.0/docs',
  ]);
  upstream = await startServer({
    '/releases/widget-1.0.tar.gz': { body: tgz },
    '/pinned/docs.tar.gz': { body: other },
  });
  const fetcher = new Fetcher(h.cache);
  tarball = await fetcher.fetch({ type: 'tarball', url: upstream.url('/releases/widget-1.0.tar.gz') });
  const fi = new FastImport();
  fi.commit('refs/heads/main', BASE_TIME, 'first\n', [
    ['100644', 'lib/core.ts', 'export {};\n'],
    ['100755', 'bin/tool', '#!/bin/sh\n'],
    ['120000', 'latest', 'lib/core.ts'],
  ]);
  const repo = join(h.tmp, 'gadget.git');
  importRepo(repo, fi);
  gitTree = await fetcher.fetch({ type: 'git', url: `file://${repo}`, ref: 'main' });
  gitRev = gitTree.metadata.rev!;
  const manifest = parseManifest(
    `[pins.docs-snapshot]\ntype = "tarball"\nurl = "${upstream.url('/pinned/docs.tar.gz')}"\n`,
  );
  const sync = await synchronize(manifest, undefined, { cache: h.cache, lockfile: LOCKFILE });
  pinned = sync.lock.pins['docs-snapshot']!.storePath;
  // An uploaded-style path (input-addressed, no content address) that references beta.
  const { ca: _ca, ...source } = (await h.cache.pathInfos.get(tarball.storePath.digest))!;
  withRefs = await h.cache.pathInfos.put({
    ...source,
    storePath: { digest: new Uint8Array(randomBytes(20)), name: 'with-refs' },
    references: [beta.storePath],
  });
  await mkdir(OUTPUT, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await upstream?.close();
  await h?.close();
});

async function screenshot(page: import('playwright-core').Page, name: string): Promise<void> {
  const file = join(OUTPUT, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

describe.skipIf(!haveBrowser)('index page in headless Chromium', () => {
  it('shows keys, priority and counts, filters as you type, links to narinfos, loads nothing external', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const response = await page.goto(`${h.base}/`);
    expect(response?.status()).toBe(200);
    expect(await page.title()).toBe('fetch-cache binary cache');
    expect(await page.textContent('#keys')).toContain(formatPublicKey(h.key.public));
    expect(await page.textContent('#priority')).toBe('23');
    expect(await page.textContent('#path-count')).toBe('7');
    expect(await page.locator('#paths tbody tr').count()).toBe(7);
    for (const n of names) expect(await page.textContent('#paths')).toContain(n);

    await page.fill('#q', 'BETA');
    expect(await page.locator('#paths tbody tr:visible').count()).toBe(1);
    expect(await page.textContent('#shown')).toBe('1');
    await page.fill('#q', '');
    expect(await page.locator('#paths tbody tr:visible').count()).toBe(7);

    const row = page.locator('#paths tbody tr', { hasText: 'alpha-tree' });
    await row.locator('a', { hasText: 'narinfo' }).click();
    await page.waitForLoadState();
    expect(await page.textContent('body')).toContain(`StorePath: /nix/store/${names[0]}`);

    expect(problems).toEqual([]);
    expect(requests.every((u) => u.startsWith(h.base))).toBe(true);
    expect(await context.cookies()).toEqual([]);
    await context.close();
  });

  it('shows where each path came from and finds paths by URL, rev and pin name', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${h.base}/`);
    const rowOf = (path: string) =>
      page.locator('#paths tbody tr', {
        has: page.locator(
          `a[href="path/${path.slice(h.cache.storeDir.length + 1, h.cache.storeDir.length + 33)}"]`,
        ),
      });
    const tarRow = rowOf(tarball.path);
    expect(await tarRow.locator('td').nth(1).textContent()).toBe(
      `tarball ${upstream.url('/releases/widget-1.0.tar.gz')}`,
    );
    expect(await tarRow.locator('td').nth(2).locator('time').getAttribute('datetime')).toMatch(
      /^\d{4}-\d\d-\d\dT/,
    );
    expect(await tarRow.locator('td').nth(3).locator('time').count()).toBe(1);
    const gitRow = rowOf(gitTree.path);
    expect(await gitRow.locator('td').nth(1).textContent()).toBe(
      `git file://${join(h.tmp, 'gadget.git')} refs/heads/main @ ${gitRev}`,
    );
    const pinRow = rowOf(pinned);
    expect(await pinRow.locator('.pin').textContent()).toBe('docs-snapshot');
    expect(await pinRow.locator('.pin').getAttribute('title')).toBe(LOCKFILE);
    expect(
      await rowOf(names[1]!.replace(/^/, `${h.cache.storeDir}/`))
        .locator('td')
        .nth(1)
        .textContent(),
    ).toBe('added or uploaded');

    for (const [q, expected] of [
      ['/releases/widget', tarball.path],
      [gitRev.slice(0, 12), gitTree.path],
      ['DOCS-SNAPSHOT', pinned],
      ['project/pins.lock', pinned],
    ] as const) {
      await page.fill('#q', q);
      expect(await page.locator('#paths tbody tr:visible').count(), q).toBe(1);
      expect(await page.locator('#paths tbody tr:visible td.p').textContent(), q).toBe(expected);
    }
    await page.fill('#q', '');
    await screenshot(page, 'index-page.png');
    await context.close();
  });

  it("a path's own page: source, narinfo fields, signatures, references and the file tree", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${h.base}/`);
    await page.locator(`#paths a[href="path/${storePathHashPart(gitTree.storePath)}"]`).click();
    await page.waitForLoadState();
    expect(await page.textContent('#store-path')).toBe(gitTree.path);
    expect(await page.textContent('#sources')).toContain(`@ ${gitRev}`);
    const fields = await page.locator('#narinfo dt').allTextContents();
    expect(fields).toEqual(
      expect.arrayContaining([
        'StorePath',
        'URL',
        'Compression',
        'NarHash',
        'NarSize',
        'References',
        'Sig',
        'CA',
      ]),
    );
    expect(await page.textContent('#narinfo')).toContain(gitTree.path);
    expect(await page.textContent('#signatures')).toContain('fetch-cache-test-1:');
    expect(await page.textContent('#references')).toContain('None.');
    const files = page.locator('#files');
    expect(await files.locator('li[data-type="regular"]').allTextContents()).toEqual([
      expect.stringMatching(/^tool \(executable\) /),
      expect.stringMatching(/^core\.ts /),
    ]);
    expect(await files.locator('li[data-type="symlink"]').textContent()).toBe('latest → lib/core.ts');
    expect(await page.locator('#files details').count()).toBe(3);
    await screenshot(page, 'path-page.png');

    await page.goto(`${h.base}/path/${storePathHashPart(withRefs.storePath)}`);
    expect(await page.textContent('#sources')).toBe('No fetch recorded: added or uploaded.');
    await page.locator('#references a').click();
    await page.waitForLoadState();
    expect(await page.textContent('#store-path')).toBe(
      `${h.cache.storeDir}/${storePathBaseName(beta.storePath)}`,
    );
    expect(await page.locator('#files li[data-type="regular"]').count()).toBe(1);

    await page.goto(
      `${h.base}/path/${pinned.slice(h.cache.storeDir.length + 1, h.cache.storeDir.length + 33)}`,
    );
    expect(await page.textContent('#pins')).toContain(LOCKFILE);
    expect(problems).toEqual([]);
    const missing = await page.goto(`${h.base}/path/${'0'.repeat(32)}`);
    expect(missing?.status()).toBe(404);
    await context.close();
  });

  it('filters on the server with ?q= (works without script), by name and by source', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${h.base}/?q=gamma`);
    expect(await page.locator('#paths tbody tr').count()).toBe(1);
    expect(await page.textContent('#paths tbody')).toContain('gamma-_b_odd__b_.txt');
    await page.goto(`${h.base}/?q=${encodeURIComponent('gadget.git')}`);
    expect(await page.locator('#paths tbody tr td.p').allTextContents()).toEqual([gitTree.path]);
    await context.close();
  });
});
