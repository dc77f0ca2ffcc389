// The conformance suite every PathInfoService backend must pass: misses, round trips of path infos with
// file, directory and symlink roots and every content-address kind snix can carry, a stored path never
// changing its content (conflicts refused, the same content only adding signatures, replacement on request
// and its effect on the NAR-hash index), listing in store-path digest order, look-up by NAR hash, deletion, and
// validation of what is put. Path infos are built from snix fixtures (store paths from
// snix's `glue/src/fetchers/mod.rs` tests, NAR hashes of `store/src/fixtures.rs`, nodes from fixtures/castore.json and fixtures/pathinfo.json).

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { b3FromHex } from '../../src/castore/digest.js';
import { directoryNode, fileNode, symlinkNode } from '../../src/castore/nodes.js';
import type { ContentAddress, ContentAddressMethod } from '../../src/nix/content-address.js';
import { HASH_SIZE, type HashAlgo } from '../../src/nix/hashing.js';
import { parseStorePathBaseName, storePathBaseName } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import type { PathInfoService } from '../../src/pathinfo/service.js';

interface PathInfoVector {
  storePath: string;
  node: { type: 'symlink'; target: string };
  narSha256: string;
  narSize: number;
  protoHex: string;
}

export const vectors = (
  JSON.parse(readFileSync(new URL('../../fixtures/pathinfo.json', import.meta.url), 'utf8')) as {
    pathInfos: PathInfoVector[];
  }
).pathInfos;

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sp = parseStorePathBaseName;

/** A syntactically valid ed25519 signature (the service does not verify signatures). */
export function fakeSignature(keyName: string, seed: number): string {
  const bytes = Buffer.alloc(64);
  for (let i = 0; i < 64; i++) bytes[i] = (seed * 31 + i * 7) & 0xff;
  return `${keyName}:${bytes.toString('base64')}`;
}

const v0 = vectors[0]!;

/** snix's PATH_INFO_SYMLINK (`store/src/fixtures.rs`). */
export const PATH_INFO_SYMLINK: PathInfo = {
  storePath: sp(v0.storePath),
  node: symlinkNode(v0.node.target),
  references: [],
  narSha256: unhex(v0.narSha256),
  narSize: v0.narSize,
  signatures: [],
};

/** "Hello World!" as a flat sha256 fixed-output path (§10.4, §10.5 "helloworld"). */
export const PATH_INFO_FILE: PathInfo = {
  storePath: sp('53fn6f2is6kaplds62zzkvyb79fkj51f-helloworld'),
  node: fileNode(b3FromHex('5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c'), 12),
  references: [],
  narSha256: unhex('03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040'),
  narSize: 128,
  signatures: [fakeSignature('cache.example.com-1', 1)],
  ca: {
    method: 'flat',
    hash: {
      algo: 'sha256',
      digest: unhex('7f83b1657ff1fc53b92dc18148a1d65dfc2d4b1fa3d677284addd200126d9069'),
    },
  },
};

/** DIRECTORY_COMPLICATED as a NAR sha256 path with references, signatures and a deriver. */
export const PATH_INFO_DIRECTORY: PathInfo = {
  storePath: sp('pngqdzggfqs4q7fg6iywqnlzcgsp85qr-complicated'),
  node: directoryNode(b3FromHex('3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a'), 5),
  references: [sp(v0.storePath), sp('53fn6f2is6kaplds62zzkvyb79fkj51f-helloworld')],
  narSha256: unhex('ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a'),
  narSize: 840,
  signatures: [fakeSignature('cache.example.com-1', 2), fakeSignature('test1', 3)],
  deriver: sp('vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-complicated.drv'),
  ca: {
    method: 'nar',
    hash: {
      algo: 'sha256',
      digest: unhex('ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a'),
    },
  },
};

/** Every content-address kind of `NARInfo.CA.Hash`, in enum order. */
export const CA_KINDS: readonly (readonly [ContentAddressMethod, HashAlgo])[] = [
  ['nar', 'sha256'],
  ['nar', 'sha1'],
  ['nar', 'sha512'],
  ['nar', 'md5'],
  ['text', 'sha256'],
  ['flat', 'sha1'],
  ['flat', 'md5'],
  ['flat', 'sha256'],
  ['flat', 'sha512'],
];

export function caOf(method: ContentAddressMethod, algo: HashAlgo): ContentAddress {
  return { method, hash: { algo, digest: new Uint8Array(HASH_SIZE[algo]).fill(0xa5) } };
}

/** `base` under another store path digest (and name), optionally with another NAR hash. */
function variant(base: PathInfo, digestByte: number, narByte?: number): PathInfo {
  const digest = new Uint8Array(20).fill(digestByte);
  return {
    ...base,
    storePath: { digest, name: `${base.storePath.name}-${digestByte}` },
    ...(narByte === undefined ? {} : { narSha256: new Uint8Array(32).fill(narByte) }),
  };
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export interface PathInfoServiceHandle {
  readonly service: PathInfoService;
  /** Releases the backend (closes the database, removes temp files). */
  close(): Promise<void>;
}

/** Runs the suite against fresh services from `make` (one per test). */
export function pathInfoServiceConformance(name: string, make: () => Promise<PathInfoServiceHandle>): void {
  describe(`PathInfoService conformance: ${name}`, () => {
    let handle: PathInfoServiceHandle;
    let svc: PathInfoService;
    beforeEach(async () => {
      handle = await make();
      svc = handle.service;
    });
    afterEach(async () => {
      await handle.close();
    });

    it('a miss is undefined everywhere', async () => {
      expect(await svc.get(PATH_INFO_SYMLINK.storePath.digest)).toBeUndefined();
      expect(await svc.byNarHash(PATH_INFO_SYMLINK.narSha256)).toBeUndefined();
      expect(await collect(svc.list())).toEqual([]);
      await expect(svc.delete(PATH_INFO_SYMLINK.storePath.digest)).resolves.toBeUndefined();
    });

    it.each([
      ['symlink', PATH_INFO_SYMLINK],
      ['file', PATH_INFO_FILE],
      ['directory', PATH_INFO_DIRECTORY],
    ])('put/get round trip with a %s root', async (_kind, info) => {
      expect(await svc.put(info)).toEqual(info);
      expect(await svc.get(info.storePath.digest)).toEqual(info);
    });

    it.each(CA_KINDS.map(([m, a]) => [`${m}:${a}`, m, a] as const))(
      'put/get round trip with content address %s',
      async (_label, method, algo) => {
        const info: PathInfo = { ...PATH_INFO_FILE, ca: caOf(method, algo) };
        await svc.put(info);
        expect((await svc.get(info.storePath.digest))?.ca).toEqual(info.ca);
      },
    );

    it('put returns the normalised path info (signatures re-encoded as padded base64)', async () => {
      const canonical = fakeSignature('k', 9);
      const unpadded = canonical.replace(/=+$/, '');
      const stored = await svc.put({ ...PATH_INFO_SYMLINK, signatures: [unpadded] });
      expect(stored.signatures).toEqual([canonical]);
      expect((await svc.get(PATH_INFO_SYMLINK.storePath.digest))?.signatures).toEqual([canonical]);
    });

    it('put refuses other content for a stored path (ERR_PATH_CONFLICT) and changes nothing', async () => {
      await svc.put(PATH_INFO_DIRECTORY);
      const { ca: _ca, ...withoutCa } = PATH_INFO_DIRECTORY;
      const other: PathInfo = { ...withoutCa, narSha256: new Uint8Array(32).fill(1) };
      const conflicts: [string, PathInfo][] = [
        ['another NAR hash', other],
        ['another NAR size', { ...PATH_INFO_DIRECTORY, narSize: 841 }],
        ['no content address', withoutCa],
        ['another content address', { ...PATH_INFO_DIRECTORY, ca: caOf('nar', 'sha512') }],
        ['other references', { ...PATH_INFO_DIRECTORY, references: [sp(v0.storePath)] }],
      ];
      for (const [why, info] of conflicts) {
        const error = await svc.put(info).catch((e: unknown) => e);
        expect(error, why).toMatchObject({
          code: 'ERR_PATH_CONFLICT',
          path: storePathBaseName(info.storePath),
        });
        expect(await svc.get(PATH_INFO_DIRECTORY.storePath.digest), why).toEqual(PATH_INFO_DIRECTORY);
      }
      expect(await svc.byNarHash(other.narSha256)).toBeUndefined();
      expect(hex((await svc.byNarHash(PATH_INFO_DIRECTORY.narSha256))!)).toBe(
        hex(PATH_INFO_DIRECTORY.storePath.digest),
      );
      // A path info without a content address is held to it as well.
      await svc.put(PATH_INFO_SYMLINK);
      await expect(svc.put({ ...PATH_INFO_SYMLINK, ca: caOf('nar', 'sha256') })).rejects.toMatchObject({
        code: 'ERR_PATH_CONFLICT',
      });
      expect(await svc.get(PATH_INFO_SYMLINK.storePath.digest)).toEqual(PATH_INFO_SYMLINK);
    });

    it('the same content again only adds the signatures the stored one lacks', async () => {
      await svc.put(PATH_INFO_DIRECTORY);
      const [s1, s2] = PATH_INFO_DIRECTORY.signatures;
      const s3 = fakeSignature('uploader-1', 4);
      // Another deriver (here none) is not other content; the stored one stays.
      const { deriver: _deriver, ...underived } = PATH_INFO_DIRECTORY;
      const merged = await svc.put({ ...underived, signatures: [s3, s2!, s3] });
      const expected = { ...PATH_INFO_DIRECTORY, signatures: [s1, s2, s3] };
      expect(merged).toEqual(expected);
      expect(await svc.get(PATH_INFO_DIRECTORY.storePath.digest)).toEqual(expected);
      // Fewer signatures remove none.
      expect(await svc.put({ ...PATH_INFO_DIRECTORY, signatures: [] })).toEqual(expected);
      expect(hex((await svc.byNarHash(PATH_INFO_DIRECTORY.narSha256))!)).toBe(
        hex(PATH_INFO_DIRECTORY.storePath.digest),
      );
      expect(await collect(svc.list())).toHaveLength(1);
    });

    it('put with replace replaces other content and moves the NAR-hash index entry', async () => {
      await svc.put(PATH_INFO_DIRECTORY);
      const replaced: PathInfo = {
        ...PATH_INFO_DIRECTORY,
        narSha256: new Uint8Array(32).fill(1),
        narSize: 1,
      };
      expect(await svc.put(replaced, { replace: true })).toEqual(replaced);
      expect(await svc.get(PATH_INFO_DIRECTORY.storePath.digest)).toEqual(replaced);
      expect(await svc.byNarHash(PATH_INFO_DIRECTORY.narSha256)).toBeUndefined();
      expect(hex((await svc.byNarHash(replaced.narSha256))!)).toBe(hex(replaced.storePath.digest));
      expect(await collect(svc.list())).toHaveLength(1);
    });

    it('list returns every path info in store path digest order', async () => {
      const infos = [0x7f, 0x01, 0xff, 0x80, 0x00].map((b, i) => variant(PATH_INFO_SYMLINK, b, i + 1));
      for (const info of infos) await svc.put(info);
      const listed = await collect(svc.list());
      const expected = [...infos].sort((a, b) => Buffer.compare(a.storePath.digest, b.storePath.digest));
      expect(listed).toEqual(expected);
    });

    it('byNarHash finds the store path of a NAR', async () => {
      for (const info of [PATH_INFO_SYMLINK, PATH_INFO_FILE, PATH_INFO_DIRECTORY]) await svc.put(info);
      for (const info of [PATH_INFO_SYMLINK, PATH_INFO_FILE, PATH_INFO_DIRECTORY]) {
        expect(hex((await svc.byNarHash(info.narSha256))!)).toBe(hex(info.storePath.digest));
      }
      expect(await svc.byNarHash(new Uint8Array(32).fill(0xee))).toBeUndefined();
    });

    it('store paths sharing a NAR hash stay findable as each is deleted', async () => {
      const a = variant(PATH_INFO_FILE, 0x10);
      const b = variant(PATH_INFO_FILE, 0x20);
      await svc.put(b);
      await svc.put(a);
      expect([hex(a.storePath.digest), hex(b.storePath.digest)]).toContain(
        hex((await svc.byNarHash(PATH_INFO_FILE.narSha256))!),
      );
      await svc.delete(a.storePath.digest);
      expect(hex((await svc.byNarHash(PATH_INFO_FILE.narSha256))!)).toBe(hex(b.storePath.digest));
      await svc.delete(b.storePath.digest);
      expect(await svc.byNarHash(PATH_INFO_FILE.narSha256)).toBeUndefined();
    });

    it('delete removes the path info and its index entry, and only those', async () => {
      await svc.put(PATH_INFO_FILE);
      await svc.put(PATH_INFO_DIRECTORY);
      await svc.delete(PATH_INFO_FILE.storePath.digest);
      expect(await svc.get(PATH_INFO_FILE.storePath.digest)).toBeUndefined();
      expect(await svc.byNarHash(PATH_INFO_FILE.narSha256)).toBeUndefined();
      expect(await svc.get(PATH_INFO_DIRECTORY.storePath.digest)).toEqual(PATH_INFO_DIRECTORY);
      expect(await collect(svc.list())).toEqual([PATH_INFO_DIRECTORY]);
      await svc.delete(PATH_INFO_FILE.storePath.digest);
    });

    it('of concurrent puts of one new store path with different contents exactly one wins', async () => {
      const versions = [1, 2, 3, 4].map((n) => ({
        ...PATH_INFO_SYMLINK,
        narSha256: new Uint8Array(32).fill(n),
      }));
      const results = await Promise.allSettled(versions.map((v) => svc.put(v)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ERR_PATH_CONFLICT' });
      }
      const final = await svc.get(PATH_INFO_SYMLINK.storePath.digest);
      const found = await Promise.all(versions.map((v) => svc.byNarHash(v.narSha256)));
      expect(found.filter((f) => f !== undefined)).toHaveLength(1);
      expect(await svc.byNarHash(final!.narSha256)).toBeDefined();
    });

    it('concurrent replacing puts of one store path leave exactly one index entry', async () => {
      const versions = [1, 2, 3, 4].map((n) => ({
        ...PATH_INFO_SYMLINK,
        narSha256: new Uint8Array(32).fill(n),
      }));
      await Promise.all(versions.map((v) => svc.put(v, { replace: true })));
      const final = await svc.get(PATH_INFO_SYMLINK.storePath.digest);
      const found = await Promise.all(versions.map((v) => svc.byNarHash(v.narSha256)));
      expect(found.filter((f) => f !== undefined)).toHaveLength(1);
      expect(await svc.byNarHash(final!.narSha256)).toBeDefined();
    });

    it.each([
      ['ERR_BAD_HASH', 'a NAR sha256 of the wrong length', { narSha256: new Uint8Array(20) }],
      ['ERR_BAD_SIGNATURE', 'a malformed signature', { signatures: ['no-colon'] }],
      ['ERR_BAD_CA', 'a git content address', { ca: caOf('git', 'sha1') }],
      ['ERR_BAD_CA', 'a text content address that is not sha256', { ca: caOf('text', 'sha1') }],
      ['ERR_BAD_STORE_PATH', 'a deriver that is not a .drv', { deriver: sp(v0.storePath) }],
      [
        'ERR_BAD_STORE_PATH',
        'a reference with a short digest',
        { references: [{ digest: new Uint8Array(19), name: 'x' }] },
      ],
    ] as const)('put rejects %s (%s) and stores nothing', async (code, _what, patch) => {
      await expect(svc.put({ ...PATH_INFO_SYMLINK, ...patch } as PathInfo)).rejects.toMatchObject({ code });
      expect(await svc.get(PATH_INFO_SYMLINK.storePath.digest)).toBeUndefined();
    });
  });
}
