import { request } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as lzma from 'lzma-native';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fetcher } from '../../src/fetchers/base.js';
import { toSRI } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar, type NarTree } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder, parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { generateKeyPair, signNarInfo, validNarInfoSigners } from '../../src/nix/signing.js';
import {
  formatStorePath,
  makeFixedOutputPath,
  makeTextPath,
  type StorePath,
  storePathBaseName,
  storePathHashPart,
} from '../../src/nix/store-path.js';
import { verify } from '../../src/ops/verify.js';
import { presentedToken } from '../../src/server/auth.js';
import { addSampleTree, basicAuth, type Harness, rawRequest, startHarness, TOKEN } from './harness.js';

const xz = (lzma as unknown as { compress(b: Uint8Array): Promise<Buffer> }).compress;
const AUTH = { Authorization: basicAuth('nix', TOKEN) };

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(() => h.close());

const TREE: NarTree = {
  type: 'directory',
  entries: {
    'hello.txt': { type: 'regular', contents: new TextEncoder().encode('hello world\n') },
    bin: {
      type: 'directory',
      entries: { run: { type: 'regular', executable: true, contents: new Uint8Array(5000).fill(65) } },
    },
    link: { type: 'symlink', target: 'hello.txt' },
  },
};

/** An input-addressed store path (any 20-byte digest). */
function iaPath(name: string, seed: number): StorePath {
  return { digest: sha256(`ia-${seed}`).slice(0, 20), name };
}

function narInfoText(
  sp: StorePath,
  nar: Uint8Array,
  file: Uint8Array,
  ext: string,
  extra: Partial<{ references: string[]; ca: string; sigs: string[]; compression: string }> = {},
): string {
  return formatNarInfoNixOrder({
    storePath: formatStorePath(sp),
    url: `nar/${encodeNix32(sha256(file))}.nar${ext}`,
    compression: extra.compression ?? (ext === '' ? 'none' : ext === '.xz' ? 'xz' : 'gzip'),
    fileHash: { algo: 'sha256', digest: sha256(file) },
    fileSize: file.length,
    narHash: { algo: 'sha256', digest: sha256(nar) },
    narSize: nar.length,
    references: extra.references ?? [],
    deriver: `${encodeNix32(sha256('drv').slice(0, 20))}-x.drv`,
    sigs: extra.sigs ?? [],
    ...(extra.ca === undefined ? {} : { ca: extra.ca }),
  });
}

async function putNar(file: Uint8Array, ext: string, headers: Record<string, string> = AUTH) {
  return rawRequest(h.port, 'PUT', `/nar/${encodeNix32(sha256(file))}.nar${ext}`, headers, file);
}

async function putNarInfo(sp: StorePath, text: string, headers: Record<string, string> = AUTH) {
  return rawRequest(h.port, 'PUT', `/${storePathHashPart(sp)}.narinfo`, headers, Buffer.from(text));
}

async function countPaths(): Promise<number> {
  let n = 0;
  for await (const _ of h.cache.pathInfos.list()) n++;
  return n;
}

describe('uploads', () => {
  it('accepts an xz NAR then its narinfo, keeps the uploader Sig and adds ours; the NAR reads back identical', async () => {
    const nar = encodeNar(TREE);
    const file = await xz(nar);
    const sp = iaPath('built', 1);
    const uploader = generateKeyPair('uploader-1');
    expect((await rawRequest(h.port, 'HEAD', `/nar/${encodeNix32(sha256(file))}.nar.xz`)).status).toBe(404);
    expect((await putNar(file, '.xz')).status).toBe(200);
    expect((await rawRequest(h.port, 'HEAD', `/nar/${encodeNix32(sha256(file))}.nar.xz`)).status).toBe(200);
    const signed = signNarInfo(parseNarInfo(narInfoText(sp, nar, file, '.xz')), [uploader.secret]);
    const r = await putNarInfo(sp, formatNarInfoNixOrder(signed));
    expect(r.status, r.body.toString()).toBe(200);

    const served = parseNarInfo(
      (await rawRequest(h.port, 'GET', `/${storePathHashPart(sp)}.narinfo`)).body.toString(),
    );
    expect(served.compression).toBe('none');
    expect(served.deriver).toBe(signed.deriver);
    expect(validNarInfoSigners(served, [uploader.public, h.key.public]).sort()).toEqual([
      'fetch-cache-test-1',
      'uploader-1',
    ]);
    const back = await rawRequest(h.port, 'GET', `/${served.url}`);
    expect(Buffer.compare(back.body, nar)).toBe(0);
  });

  it('accepts uncompressed and gzip NARs, Bearer tokens and Basic with any user', async () => {
    const nar = encodeNar({ type: 'regular', contents: new Uint8Array([1, 2, 3]) });
    const sp = iaPath('plain', 2);
    expect((await putNar(nar, '', { Authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect(
      (await putNarInfo(sp, narInfoText(sp, nar, nar, ''), { Authorization: basicAuth('', TOKEN) })).status,
    ).toBe(200);
    const gz = gzipSync(encodeNar({ type: 'regular', contents: new Uint8Array([9]) }));
    expect((await putNar(gz, '.gz')).status).toBe(200);
    expect(await countPaths()).toBe(1);
  });

  it('refuses uploads without the token (401 with a challenge) and changes nothing', async () => {
    const nar = encodeNar(TREE);
    const sp = iaPath('x', 3);
    for (const headers of [
      {},
      { Authorization: basicAuth('nix', 'wrong') },
      { Authorization: 'Bearer nope' },
      { Authorization: TOKEN },
    ]) {
      const r = await putNar(nar, '', headers);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Basic /);
      expect((await putNarInfo(sp, narInfoText(sp, nar, nar, ''), headers)).status).toBe(401);
    }
    expect(await h.services.uploads.count()).toBe(0);
    expect(await countPaths()).toBe(0);
    expect(presentedToken(basicAuth('u', 'p:q'))).toBe('p:q');
    expect(presentedToken('Digest x')).toBeUndefined();
  });

  it('refuses uploads with 403 when no token is configured', async () => {
    await h.close();
    h = await startHarness({ uploadToken: undefined });
    const nar = encodeNar(TREE);
    expect((await putNar(nar, '')).status).toBe(403);
  });

  it('leaves no trace for a bad NAR, a misnamed file or a wrong compression name', async () => {
    const nar = encodeNar(TREE);
    const broken = nar.slice(0, nar.length - 8);
    expect((await putNar(broken, '')).status).toBe(400);
    const garbage = Buffer.concat([nar, Buffer.from('trailing')]);
    expect((await putNar(garbage, '')).status).toBe(400);
    const r = await rawRequest(h.port, 'PUT', `/nar/${encodeNix32(sha256('other'))}.nar`, AUTH, nar);
    expect(r.status).toBe(400);
    expect(r.body.toString()).toContain('its name says');
    expect((await putNar(await xz(nar), '')).status).toBe(400);
    expect((await putNar(nar, '.zst')).status).toBe(400);
    expect(await h.services.uploads.count()).toBe(0);
    expect(await countPaths()).toBe(0);
  });

  it('leaves no trace when the client drops the upload midway', async () => {
    const nar = encodeNar({ type: 'regular', contents: new Uint8Array(2_000_000).fill(7) });
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: h.port,
        method: 'PUT',
        path: `/nar/${encodeNix32(sha256(nar))}.nar`,
        headers: { ...AUTH, 'Content-Length': String(nar.length) },
      });
      req.on('error', () => resolve());
      req.write(nar.subarray(0, 500_000), () =>
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100),
      );
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(await h.services.uploads.count()).toBe(0);
    expect(await countPaths()).toBe(0);
  });

  it('refuses narinfos that do not match the NAR, the URL, the references or the CA', async () => {
    const nar = encodeNar(TREE);
    const sp = iaPath('checked', 4);
    expect((await putNar(nar, '')).status).toBe(200);
    const good = narInfoText(sp, nar, nar, '');
    const cases: [string, StorePath, string][] = [
      ['NarSize', sp, good.replace(`NarSize: ${nar.length}`, `NarSize: ${nar.length + 8}`)],
      ['not been uploaded', sp, good.replaceAll(encodeNix32(sha256(nar)), encodeNix32(sha256('x')))],
      ['uploaded as', iaPath('other', 5), good],
      [
        'not in this cache',
        sp,
        good.replace('References: ', `References: ${storePathBaseName(iaPath('dep', 6))}`),
      ],
      ['FileSize', sp, good.replace(`FileSize: ${nar.length}`, 'FileSize: 1')],
      [
        'content address',
        sp,
        good.replace('\n', `\n`).concat(`CA: fixed:r:sha256:${encodeNix32(sha256('nope'))}\n`),
      ],
      ['makes', sp, good.concat(`CA: fixed:r:sha256:${encodeNix32(sha256(nar))}\n`)],
      ['corrupt', sp, 'StorePath: nonsense\n'],
      ['Sig', sp, good.replace('References: \n', 'References: \nSig: bad\n')],
    ];
    for (const [why, path, text] of cases) {
      const r = await rawRequest(
        h.port,
        'PUT',
        `/${storePathHashPart(path)}.narinfo`,
        AUTH,
        Buffer.from(text),
      );
      expect(r.status, why).toBe(400);
      expect(r.body.toString(), why).toContain(why);
    }
    expect(await countPaths()).toBe(0);
    // The pending NAR is still there for a correct narinfo.
    expect((await putNarInfo(sp, good)).status).toBe(200);
    expect(await countPaths()).toBe(1);
  });

  it('checks content addresses: nar, flat and text paths must recompute to their StorePath', async () => {
    const nar = encodeNar(TREE);
    const narCa = makeFixedOutputPath({
      name: 'tree',
      method: 'nar',
      hash: { algo: 'sha256', digest: sha256(nar) },
    });
    expect((await putNar(nar, '')).status).toBe(200);
    const ok = await putNarInfo(
      narCa,
      narInfoText(narCa, nar, nar, '', { ca: `fixed:r:sha256:${encodeNix32(sha256(nar))}` }),
    );
    expect(ok.status, ok.body.toString()).toBe(200);

    const contents = new TextEncoder().encode('flat file\n');
    const flatNar = encodeNar({ type: 'regular', contents });
    const flat = makeFixedOutputPath({
      name: 'f',
      method: 'flat',
      hash: { algo: 'sha256', digest: sha256(contents) },
    });
    expect((await putNar(flatNar, '')).status).toBe(200);
    const f = await putNarInfo(
      flat,
      narInfoText(flat, flatNar, flatNar, '', { ca: `fixed:sha256:${encodeNix32(sha256(contents))}` }),
    );
    expect(f.status, f.body.toString()).toBe(200);

    const textPath = makeTextPath('t', sha256(contents), [formatStorePath(narCa)]);
    const t = await putNarInfo(
      textPath,
      narInfoText(textPath, flatNar, flatNar, '', {
        ca: `text:sha256:${encodeNix32(sha256(contents))}`,
        references: [storePathBaseName(narCa)],
      }),
    );
    expect(t.status, t.body.toString()).toBe(200);
    const served = parseNarInfo(
      (await rawRequest(h.port, 'GET', `/${storePathHashPart(textPath)}.narinfo`)).body.toString(),
    );
    expect(served.references).toEqual([storePathBaseName(narCa)]);
    expect(served.ca).toBe(`text:sha256:${encodeNix32(sha256(contents))}`);
    expect(await countPaths()).toBe(3);
  });

  it('refuses a narinfo over the size limit with 413', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x41);
    const r = await rawRequest(h.port, 'PUT', `/${'0'.repeat(32)}.narinfo`, AUTH, big);
    expect(r.status).toBe(413);
  });
});

describe('a stored path never changes its content (hostile uploads with the token)', () => {
  /** A path fetched earlier (add: the path source of the fetcher base), its NAR and an unrelated NAR. */
  async function fetchedPath() {
    const info = await addSampleTree(h, 'source');
    const nar = (await rawRequest(h.port, 'GET', `/nar/${encodeNix32(info.narSha256)}.nar`)).body;
    expect(nar.length).toBe(info.narSize);
    const evil = encodeNar({
      type: 'directory',
      entries: { 'a.txt': { type: 'regular', contents: new TextEncoder().encode('pwned\n') } },
    });
    const ca = `fixed:r:sha256:${encodeNix32(info.narSha256)}`;
    return { info, nar, evil, ca };
  }

  async function servedNarInfo(sp: StorePath) {
    return parseNarInfo(
      (await rawRequest(h.port, 'GET', `/${storePathHashPart(sp)}.narinfo`)).body.toString(),
    );
  }

  it('refuses other NAR bytes for a fetched path: 409 without CA, 400 with a CA that does not fit; nothing changes', async () => {
    const { info, nar, evil, ca } = await fetchedPath();
    const sp = info.storePath;
    expect((await putNar(evil, '')).status).toBe(200);
    const cases: [number, string, string][] = [
      [409, 'never changes its content', narInfoText(sp, evil, evil, '')],
      [400, 'does not match the uploaded content', narInfoText(sp, evil, evil, '', { ca })],
      [400, 'makes', narInfoText(sp, evil, evil, '', { ca: `fixed:r:sha256:${encodeNix32(sha256(evil))}` })],
      // The genuine NAR without its CA is refused too: the path was stored with one.
      [409, 'no content address', narInfoText(sp, nar, nar, '')],
    ];
    for (const [status, why, text] of cases) {
      const r = await putNarInfo(sp, text);
      expect(r.status, why).toBe(status);
      expect(r.body.toString(), why).toContain(why);
      expect(await h.cache.pathInfos.get(sp.digest), why).toEqual(info);
    }
    const served = await servedNarInfo(sp);
    expect(served.narHash).toEqual({ algo: 'sha256', digest: info.narSha256 });
    expect(served.ca).toBe(ca);
    expect((await rawRequest(h.port, 'GET', `/nar/${encodeNix32(sha256(evil))}.nar`)).status).toBe(404);
    const back = await rawRequest(h.port, 'GET', `/${served.url}`);
    expect(Buffer.compare(back.body, nar)).toBe(0);
    // fetch --hash of the genuine hash answers from the cache with the genuine path; verify finds nothing.
    const hash = toSRI({ algo: 'sha256', digest: info.narSha256 });
    const r = await new Fetcher(h.cache).fetch({ type: 'path', path: join(h.tmp, 'source'), hash });
    expect(r).toMatchObject({ cached: true, pathInfo: info });
    expect((await verify(h.cache)).damaged).toEqual([]);
  });

  it('the same content with new signatures only adds the signatures, each once', async () => {
    const { info, nar, ca } = await fetchedPath();
    const sp = info.storePath;
    const a = generateKeyPair('uploader-a-1');
    const b = generateKeyPair('uploader-b-1');
    const signed = (keys: (typeof a.secret)[]) =>
      formatNarInfoNixOrder(signNarInfo(parseNarInfo(narInfoText(sp, nar, nar, '', { ca })), keys));
    const first = await putNarInfo(sp, signed([a.secret]));
    expect(first.status, first.body.toString()).toBe(200);
    const second = await putNarInfo(sp, signed([b.secret, a.secret]));
    expect(second.status, second.body.toString()).toBe(200);
    const stored = (await h.cache.pathInfos.get(sp.digest))!;
    expect(stored.signatures.map((s) => s.split(':')[0])).toEqual(['uploader-a-1', 'uploader-b-1']);
    expect({ ...stored, signatures: [] }).toEqual({ ...info, signatures: [] });
    const served = await servedNarInfo(sp);
    expect(validNarInfoSigners(served, [a.public, b.public, h.key.public]).sort()).toEqual([
      'fetch-cache-test-1',
      'uploader-a-1',
      'uploader-b-1',
    ]);
  });
});
