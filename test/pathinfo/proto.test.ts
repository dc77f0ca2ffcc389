// PathInfo ⇄ snix.store.v1.PathInfo protobuf: the §10.7 vector byte for byte (fixtures/pathinfo.json), a
// fully populated path info against bytes assembled field by field from the .proto definition
// (snix `store/protos/pathinfo.proto`), the CA enum numbering, snix's validations on decode, prost's leniencies, and
// fast-check round trips and fuzzing.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/castore/bytes.js';
import { directoryNode, fileNode, type Node, symlinkNode } from '../../src/castore/nodes.js';
import { isFetchCacheError } from '../../src/errors.js';
import { HASH_SIZE } from '../../src/nix/hashing.js';
import { decodeNix32 } from '../../src/nix/nixbase32.js';
import type { StorePath } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { decodePathInfo, encodePathInfo } from '../../src/pathinfo/proto.js';
import {
  CA_KINDS,
  caOf,
  fakeSignature,
  hex,
  PATH_INFO_DIRECTORY,
  PATH_INFO_FILE,
  PATH_INFO_SYMLINK,
  vectors,
} from './conformance.js';

// A protobuf writer for the test only, written from the wire format, to assemble expected bytes.
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}
type Bytes = Uint8Array | readonly number[] | string;
const raw = (b: Bytes): number[] => (typeof b === 'string' ? [...utf8(b)] : [...b]);
const len = (field: number, ...payload: Bytes[]): number[] => {
  const body = payload.flatMap(raw);
  return [field * 8 + 2, ...varint(body.length), ...body];
};
const vint = (field: number, n: number): number[] => [field * 8, ...varint(n)];
const bytes = (...parts: Bytes[]): Uint8Array => new Uint8Array(parts.flatMap(raw));
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function decodeError(b: Uint8Array): unknown {
  try {
    decodePathInfo(b);
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('PathInfo protobuf known answers', () => {
  it('reproduces the §10.7 PathInfo vector of PATH_INFO_SYMLINK (109 bytes)', () => {
    const v = vectors[0]!;
    const encoded = encodePathInfo(PATH_INFO_SYMLINK);
    expect(encoded.length).toBe(109);
    expect(hex(encoded)).toBe(v.protoHex);
    expect(decodePathInfo(unhex(v.protoHex))).toEqual(PATH_INFO_SYMLINK);
  });

  it('encodes every field in number order, as prost does', () => {
    const info = PATH_INFO_DIRECTORY;
    const [sig1, sig2] = info.signatures.map((s) => Buffer.from(s.slice(s.indexOf(':') + 1), 'base64'));
    const ref0 = '00000000000000000000000000000000-dummy';
    const ref1 = '53fn6f2is6kaplds62zzkvyb79fkj51f-helloworld';
    const node = info.node as { digest: Uint8Array };
    const expected = bytes(
      len(1, len(1, len(1, 'pngqdzggfqs4q7fg6iywqnlzcgsp85qr-complicated'), len(2, node.digest), vint(3, 5))),
      len(2, decodeNix32(ref0.slice(0, 32))),
      len(2, decodeNix32(ref1.slice(0, 32))),
      len(
        3,
        vint(1, 840),
        len(2, info.narSha256),
        len(3, len(1, 'cache.example.com-1'), len(2, sig1!)),
        len(3, len(1, 'test1'), len(2, sig2!)),
        len(4, ref0),
        len(4, ref1),
        len(5, len(1, 'complicated'), len(2, info.deriver!.digest)),
        // CA type NAR_SHA256 = 0 is the proto3 default, so only the digest is written.
        len(6, len(2, info.ca!.hash.digest)),
      ),
    );
    expect(hex(encodePathInfo(info))).toBe(hex(expected));
    expect(decodePathInfo(expected)).toEqual(info);
  });

  it('numbers the CA types as NARInfo.CA.Hash does', () => {
    const names = [
      'NAR_SHA256',
      'NAR_SHA1',
      'NAR_SHA512',
      'NAR_MD5',
      'TEXT_SHA256',
      'FLAT_SHA1',
      'FLAT_MD5',
      'FLAT_SHA256',
      'FLAT_SHA512',
    ];
    CA_KINDS.forEach(([method, algo], value) => {
      const [kind, a] = names[value]!.toLowerCase().split('_');
      expect([kind, a]).toEqual([method, algo]);
      const ca = caOf(method, algo);
      const encoded = encodePathInfo({ ...PATH_INFO_SYMLINK, ca });
      const caField =
        value === 0 ? len(6, len(2, ca.hash.digest)) : len(6, vint(1, value), len(2, ca.hash.digest));
      expect(hex(encoded).endsWith(hex(bytes(caField)))).toBe(true);
    });
  });

  it('omits nar_size 0 and keeps an empty narinfo otherwise', () => {
    const info = { ...PATH_INFO_SYMLINK, narSize: 0 };
    const encoded = encodePathInfo(info);
    expect(hex(encoded).endsWith(hex(bytes(len(3, len(2, info.narSha256)))))).toBe(true);
    expect(decodePathInfo(encoded)).toEqual(info);
  });

  it('refuses to encode content addresses snix cannot represent', () => {
    for (const ca of [caOf('git', 'sha1'), caOf('git', 'sha256'), caOf('text', 'sha512')]) {
      expect(() => encodePathInfo({ ...PATH_INFO_SYMLINK, ca })).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_CA' }),
      );
    }
  });
});

describe('PathInfo protobuf decoding', () => {
  const v = vectors[0]!;
  const entry = len(1, len(3, len(1, v.storePath), len(2, v.node.target)));
  const narinfo = (...fields: Bytes[]): number[] =>
    len(3, vint(1, 136), len(2, unhex(v.narSha256)), ...fields);
  const refName = '53fn6f2is6kaplds62zzkvyb79fkj51f-helloworld';
  const refDigest = decodeNix32(refName.slice(0, 32));

  it('accepts what prost accepts: unknown fields, a narinfo split in two, a repeated scalar', () => {
    const split = bytes(
      vint(15, 7),
      entry,
      len(3, vint(1, 1)),
      len(9, 'ignored'),
      len(3, vint(1, 136), len(2, unhex(v.narSha256)), len(12, 'x')),
    );
    expect(decodePathInfo(split)).toEqual(PATH_INFO_SYMLINK);
  });

  it('converts signatures to padded name:base64 text', () => {
    const sig = new Uint8Array(64).fill(0xfb);
    const info = decodePathInfo(bytes(entry, narinfo(len(3, len(1, 'k-1'), len(2, sig)))));
    expect(info.signatures).toEqual([`k-1:${Buffer.from(sig).toString('base64')}`]);
  });

  it('appends .drv to the deriver name', () => {
    const d = new Uint8Array(20).fill(3);
    const info = decodePathInfo(bytes(entry, narinfo(len(5, len(1, 'foo'), len(2, d)))));
    expect(info.deriver).toEqual({ digest: d, name: 'foo.drv' });
  });

  it.each<[string, Uint8Array]>([
    ['empty input (no entry, no narinfo)', bytes()],
    ['no narinfo', bytes(entry)],
    ['no entry', bytes(narinfo())],
    ['truncated', bytes(entry, narinfo()).subarray(0, 100)],
    ['wrong wire type for entry', bytes(vint(1, 1), narinfo())],
    ['entry without a name', bytes(len(1, len(3, len(2, v.node.target))), narinfo())],
    ['entry name that is not a store path', bytes(len(1, len(3, len(1, 'dummy'), len(2, 'x'))), narinfo())],
    ['entry name that is not UTF-8', bytes(len(1, len(3, len(1, [0xff]), len(2, 'x'))), narinfo())],
    ['invalid entry node', bytes(len(1, len(2, len(1, v.storePath), len(2, [1, 2, 3]))), narinfo())],
    ['a reference of 19 bytes', bytes(entry, len(2, refDigest.subarray(1)), narinfo(len(4, refName)))],
    ['a reference without a name', bytes(entry, len(2, refDigest), narinfo())],
    ['a reference name without a reference', bytes(entry, narinfo(len(4, refName)))],
    [
      'a reference name for another digest',
      bytes(entry, len(2, new Uint8Array(20)), narinfo(len(4, refName))),
    ],
    ['a reference name that is not a store path', bytes(entry, len(2, refDigest), narinfo(len(4, 'x')))],
    ['nar_sha256 of 31 bytes', bytes(entry, len(3, len(2, new Uint8Array(31))))],
    ['nar_sha256 missing', bytes(entry, len(3, vint(1, 136)))],
    [
      'nar_size above 2^53-1',
      bytes(
        entry,
        len(3, [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], len(2, new Uint8Array(32))),
      ),
    ],
    ['a signature of 63 bytes', bytes(entry, narinfo(len(3, len(1, 'k'), len(2, new Uint8Array(63)))))],
    ['a signature without a key name', bytes(entry, narinfo(len(3, len(2, new Uint8Array(64)))))],
    [
      'a signature key name with a colon',
      bytes(entry, narinfo(len(3, len(1, 'a:b'), len(2, new Uint8Array(64))))),
    ],
    [
      'a deriver digest of 19 bytes',
      bytes(entry, narinfo(len(5, len(1, 'foo'), len(2, new Uint8Array(19))))),
    ],
    [
      'a deriver with an invalid name',
      bytes(entry, narinfo(len(5, len(1, 'a/b'), len(2, new Uint8Array(20))))),
    ],
    [
      'a deriver name too long with .drv',
      bytes(entry, narinfo(len(5, len(1, 'a'.repeat(210)), len(2, new Uint8Array(20))))),
    ],
    ['a CA type outside the enum', bytes(entry, narinfo(len(6, vint(1, 9), len(2, new Uint8Array(32)))))],
    [
      'a CA digest of the wrong length',
      bytes(entry, narinfo(len(6, vint(1, 5), len(2, new Uint8Array(32))))),
    ],
  ])('rejects %s with ERR_BAD_NARINFO', (_what, input) => {
    expect(decodeError(input)).toMatchObject({ code: 'ERR_BAD_NARINFO' });
  });
});

const arbDigest = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
const arbName = fc.stringMatching(/^[a-zA-Z0-9+_?=][a-zA-Z0-9+\-._?=]{0,40}$/);
const arbStorePath: fc.Arbitrary<StorePath> = fc.record({ digest: arbDigest(20), name: arbName });
const arbNode: fc.Arbitrary<Node> = fc.oneof(
  fc.tuple(arbDigest(32), fc.maxSafeNat()).map(([d, s]) => directoryNode(d, s)),
  fc.tuple(arbDigest(32), fc.maxSafeNat(), fc.boolean()).map(([d, s, x]) => fileNode(d, s, x)),
  fc
    .uint8Array({ minLength: 1, maxLength: 64 })
    .filter((t) => !t.includes(0))
    .map((t) => symlinkNode(t)),
);
const arbSignature = fc
  .tuple(fc.stringMatching(/^[a-z0-9.-]{1,20}$/), arbDigest(64))
  .map(([k, s]) => `${k}:${Buffer.from(s).toString('base64')}`);
const arbCa = fc
  .constantFrom(...CA_KINDS)
  .chain(([method, algo]) =>
    arbDigest(HASH_SIZE[algo]).map((digest) => ({ method, hash: { algo, digest } })),
  );
const arbPathInfo: fc.Arbitrary<PathInfo> = fc
  .record({
    storePath: arbStorePath,
    node: arbNode,
    references: fc.array(arbStorePath, { maxLength: 4 }),
    narSha256: arbDigest(32),
    narSize: fc.maxSafeNat(),
    signatures: fc.array(arbSignature, { maxLength: 3 }),
    deriver: fc.option(
      arbStorePath.map((sp) => ({ ...sp, name: `${sp.name}.drv` })),
      { nil: undefined },
    ),
    ca: fc.option(arbCa, { nil: undefined }),
  })
  .map(({ deriver, ca, ...rest }) => ({
    ...rest,
    ...(deriver === undefined ? {} : { deriver }),
    ...(ca === undefined ? {} : { ca }),
  }));

describe('PathInfo protobuf properties', () => {
  it('decode(encode(info)) equals info, and re-encoding is byte-identical', () => {
    fc.assert(
      fc.property(arbPathInfo, (info) => {
        const encoded = encodePathInfo(info);
        const decoded = decodePathInfo(encoded);
        expect(decoded).toEqual(info);
        expect(hex(encodePathInfo(decoded))).toBe(hex(encoded));
      }),
    );
  });

  it('decodes Buffers like Uint8Arrays, without sharing their memory', () => {
    const encoded = encodePathInfo(PATH_INFO_FILE);
    const buf = Buffer.from(encoded);
    const info = decodePathInfo(buf);
    buf.fill(0);
    expect(info).toEqual(PATH_INFO_FILE);
  });

  it('fails only with ERR_BAD_NARINFO on random and mutated input', () => {
    const valid = [PATH_INFO_SYMLINK, PATH_INFO_FILE, PATH_INFO_DIRECTORY].map(encodePathInfo);
    const mutated = fc
      .tuple(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 1, max: 255 }))
      .map(([b, i, x]) => {
        const copy = b.slice();
        copy[i % copy.length] = copy[i % copy.length]! ^ x;
        return copy;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated), (input) => {
        const e = decodeError(input);
        if (e !== undefined && !isFetchCacheError(e, 'ERR_BAD_NARINFO')) throw e;
      }),
      { numRuns: 2000 },
    );
  });

  it('a signature given as unpadded base64 is stored padded', () => {
    const canonical = fakeSignature('k', 5);
    const info = decodePathInfo(
      encodePathInfo({ ...PATH_INFO_SYMLINK, signatures: [canonical.replace(/=+$/, '')] }),
    );
    expect(info.signatures).toEqual([canonical]);
  });
});
