import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storePathHashPart } from '../../src/nix/store-path.js';
import { checkTarget } from '../../src/server/app.js';
import { HttpError } from '../../src/server/http.js';
import { addSampleTree, type Harness, rawRequest, rawSocket, startHarness } from './harness.js';

let h: Harness;
let hashPart: string;

beforeAll(async () => {
  h = await startHarness();
  hashPart = storePathHashPart((await addSampleTree(h)).storePath);
});
afterAll(() => h.close());

/** Targets that try to leave the route table or smuggle a file path. None may be served. */
const ATTACKS = [
  '/../../../../etc/passwd',
  '/..%2f..%2f..%2fetc%2fpasswd',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/%2E%2E/nix-cache-info',
  '/nar/../../etc/passwd',
  '/nar/..%2F..%2Fetc%2Fpasswd.nar',
  '/nar/%2e%2e/x.nar',
  '//nix-cache-info',
  '/nar//x.nar',
  '///etc/passwd',
  '/./nix-cache-info',
  '/nix-cache-info/.',
  '/nix-cache-info/..',
  '/etc/passwd',
  '/nar/x.nar%00.narinfo',
  '/%00',
  '/nar\\..\\..\\etc\\passwd',
  '/%c0%ae%c0%ae/etc/passwd',
  '/%252e%252e/etc/passwd',
  '/nar/%u002e%u002e/x.nar',
  '/.narinfo',
  '/..narinfo',
  `/${'a'.repeat(5000)}.narinfo`,
  'http://127.0.0.1/../etc/passwd',
  '*',
];

describe('request paths', () => {
  it.each(ATTACKS)('%s is refused without touching anything', async (target) => {
    for (const method of ['GET', 'HEAD', 'PUT']) {
      const r = await rawRequest(h.port, method, target).catch(() => undefined);
      if (r === undefined) continue; // Node's own client refused to send it; the socket test covers those
      expect([400, 404, 405], `${method} ${target}`).toContain(r.status);
      expect(r.body.toString()).not.toMatch(/root:|StoreDir|nix-archive/);
    }
  });

  it('refuses raw bytes Node clients would not send: NUL, spaces, tabs, CTLs in the target', async () => {
    for (const target of [
      '/nix-cache-info\0',
      '/%00/../etc/passwd',
      '/nix cache-info',
      '/\x01',
      '/nix-cache-info\t',
    ]) {
      const answer = await rawSocket(
        h.port,
        `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expect(answer, JSON.stringify(target)).toMatch(/^HTTP\/1\.1 (400|404)/);
      expect(answer).not.toContain('StoreDir');
    }
  });

  it('still serves the real resources', async () => {
    expect((await rawRequest(h.port, 'GET', '/nix-cache-info')).status).toBe(200);
    expect((await rawRequest(h.port, 'GET', `/${hashPart}.narinfo`)).status).toBe(200);
    expect((await rawRequest(h.port, 'GET', `/${hashPart}.narinfo?x=../..`)).status).toBe(200);
    expect((await rawRequest(h.port, 'GET', '/?q=%3Cscript%3E')).status).toBe(200);
  });

  it('answers unknown methods with 405 and an Allow header', async () => {
    const r = await rawRequest(h.port, 'DELETE', `/${hashPart}.narinfo`);
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD, PUT');
    expect((await rawRequest(h.port, 'PUT', '/nix-cache-info', {}, new Uint8Array(3))).status).toBe(405);
  });

  it('escapes the search term on the index page', async () => {
    const r = await rawRequest(h.port, 'GET', '/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E');
    expect(r.body.toString()).not.toContain('<script>alert(1)');
    expect(r.body.toString()).toContain('&#60;script&#62;alert(1)');
    expect(r.headers['set-cookie']).toBeUndefined();
  });
});

describe('checkTarget', () => {
  it('accepts plain paths only', () => {
    expect(checkTarget('/nar/abc.nar?hash=x')).toEqual({ path: '/nar/abc.nar', query: 'hash=x' });
    expect(checkTarget('/')).toEqual({ path: '/', query: '' });
    for (const bad of ['', 'x', '/a//b', '/a/../b', '/a/./b', '/%41', '/a\\b', '/.hidden', '/a/..', '/é']) {
      expect(() => checkTarget(bad), bad).toThrow(HttpError);
    }
  });
});
