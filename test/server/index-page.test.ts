/**
 * The index page in a real browser: headless Chromium (Debian `chromium`)
 * driven by playwright-core. In CI a missing browser is a failure, not a skip.
 */

import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPath } from '../../src/fs/add.js';
import { formatPublicKey } from '../../src/nix/signing.js';
import { storePathBaseName } from '../../src/nix/store-path.js';
import { addSampleTree, type Harness, startHarness } from './harness.js';

const CHROMIUM = '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium for the index page test`);
}

let h: Harness;
let browser: Browser;
const names: string[] = [];

beforeAll(async () => {
  if (!haveBrowser) return;
  h = await startHarness({ priority: 23 });
  names.push(storePathBaseName((await addSampleTree(h, 'alpha-tree', 1000)).storePath));
  for (const n of ['beta-notes.txt', 'gamma-<b>odd</b>.txt']) {
    const dir = join(h.tmp, 'files');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, n.replace(/[<>/]/g, '_')), `${n}\n`);
    names.push(storePathBaseName((await addPath(h.cache, join(dir, n.replace(/[<>/]/g, '_')))).storePath));
  }
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
  await h?.close();
});

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
    expect(await page.textContent('#path-count')).toBe('3');
    expect(await page.locator('#paths tbody tr').count()).toBe(3);
    for (const n of names) expect(await page.textContent('#paths')).toContain(n);

    await page.fill('#q', 'BETA');
    expect(await page.locator('#paths tbody tr:visible').count()).toBe(1);
    expect(await page.textContent('#shown')).toBe('1');
    await page.fill('#q', '');
    expect(await page.locator('#paths tbody tr:visible').count()).toBe(3);

    const row = page.locator('#paths tbody tr', { hasText: 'alpha-tree' });
    await row.locator('a', { hasText: 'narinfo' }).click();
    await page.waitForLoadState();
    expect(await page.textContent('body')).toContain(`StorePath: /nix/store/${names[0]}`);

    expect(problems).toEqual([]);
    expect(requests.every((u) => u.startsWith(h.base))).toBe(true);
    expect(await context.cookies()).toEqual([]);
    await context.close();
  });

  it('filters on the server with ?q= (works without script)', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${h.base}/?q=gamma`);
    expect(await page.locator('#paths tbody tr').count()).toBe(1);
    expect(await page.textContent('#paths tbody')).toContain('gamma-_b_odd__b_.txt');
    await context.close();
  });
});
