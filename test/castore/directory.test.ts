// Known-answer and validation tests for castore nodes, root Entry messages and Directory encoding, digest and size
// (vectors from snix fixtures via fixtures/castore.json), plus property round-trips.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/castore/bytes.js';
import { b3FromHex, b3ToHex, EMPTY_B3 } from '../../src/castore/digest.js';
import {
  Directory,
  decodeDirectory,
  directoryDigest,
  directorySize,
  encodeDirectory,
} from '../../src/castore/directory.js';
import {
  decodeAnonymousEntry,
  decodeEntry,
  directoryNode,
  encodeEntry,
  fileNode,
  type Node,
  nodeEquals,
  symlinkNode,
  validateName,
  validateNode,
  validateSymlinkTarget,
} from '../../src/castore/nodes.js';
import { ProtoWriter } from '../../src/castore/proto.js';
import { type ErrorCode, isFetchCacheError } from '../../src/errors.js';

interface NodeJson {
  type: 'directory' | 'file' | 'symlink';
  digest?: string;
  size?: number | undefined;
  executable?: boolean;
  target?: string;
}
interface DirVector {
  name: string;
  entries: (NodeJson & { name: string })[];
  protoHex?: string;
  digest: string;
  size: number;
}
interface RootVector {
  name: string;
  entryName?: string;
  node: NodeJson;
  protoHex: string;
  b64url?: string;
}

const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/castore.json', import.meta.url), 'utf8'),
) as {
  directories: DirVector[];
  rootEntries: RootVector[];
  otherSizeFormulas: { entries: { name: string; childSizes: Record<string, number>; digest: string }[] };
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const D32 = new Uint8Array(32).fill(7);

function toNode(j: NodeJson): Node {
  if (j.type === 'symlink') return symlinkNode(j.target!);
  if (j.type === 'directory') return directoryNode(b3FromHex(j.digest!), j.size!);
  return fileNode(b3FromHex(j.digest!), j.size!, j.executable ?? false);
}

function vector(name: string): DirVector {
  return fixtures.directories.find((d) => d.name.startsWith(name))!;
}

function expectError(code: ErrorCode, f: () => unknown, message?: RegExp): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(isFetchCacheError(thrown, code), `expected ${code}, got ${String(thrown)}`).toBe(true);
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

const badDir = (bytes: Uint8Array, message?: RegExp) =>
  expectError('ERR_BAD_DIRECTORY', () => decodeDirectory(bytes), message);

/** Hand-encodes one entry message with arbitrary fields; `field` 1/2/3 = directory/file/symlink. */
function entryField(
  w: ProtoWriter,
  field: number,
  name: Uint8Array,
  rest: (inner: ProtoWriter) => void,
): void {
  const inner = new ProtoWriter();
  if (name.length > 0) inner.bytesField(1, name);
  rest(inner);
  w.bytesField(field, inner.finish());
}
const dirEntry = (w: ProtoWriter, name: string | Uint8Array, digest = D32, size = 0) =>
  entryField(w, 1, typeof name === 'string' ? utf8(name) : name, (i) => {
    if (digest.length > 0) i.bytesField(2, digest);
    if (size > 0) i.varintField(3, size);
  });
const fileEntry = (w: ProtoWriter, name: string | Uint8Array, digest = D32) =>
  entryField(w, 2, typeof name === 'string' ? utf8(name) : name, (i) => {
    if (digest.length > 0) i.bytesField(2, digest);
  });
const symEntry = (w: ProtoWriter, name: string, target: Uint8Array) =>
  entryField(w, 3, utf8(name), (i) => {
    if (target.length > 0) i.bytesField(2, target);
  });
function proto(build: (w: ProtoWriter) => void): Uint8Array {
  const w = new ProtoWriter();
  build(w);
  return w.finish();
}

describe('directory fixtures (snix castore/src/fixtures.rs, current size formula)', () => {
  for (const v of fixtures.directories) {
    it(`${v.name}: digest ${v.digest.slice(0, 8)}…, size ${v.size}`, () => {
      const pairs = v.entries.map((e) => [e.name, toNode(e)] as const);
      const dir = Directory.fromEntries(pairs.slice().reverse());
      expect(b3ToHex(directoryDigest(dir))).toBe(v.digest);
      expect(directorySize(dir)).toBe(v.size);
      expect(dir.count).toBe(v.entries.length);
      if (v.protoHex !== undefined) {
        expect(hex(encodeDirectory(dir))).toBe(v.protoHex);
        const back = decodeDirectory(unhex(v.protoHex), { canonical: true });
        expect(back.size).toBe(v.size);
        expect(b3ToHex(back.digest())).toBe(v.digest);
        expect(back.equals(dir)).toBe(true);
      }
      for (const [name, node] of pairs) expect(nodeEquals(dir.get(name)!, node)).toBe(true);
    });
  }

  it('COMPLICATED is built bottom-up from WITH_KEEP and iterates bytewise across kinds', () => {
    const keep = Directory.fromEntries([['.keep', fileNode(EMPTY_B3, 0)]]);
    const c = Directory.fromEntries([
      ['keep', keep.toNode()],
      ['aa', symlinkNode('/nix/store/somewhereelse')],
      ['.keep', fileNode(EMPTY_B3, 0)],
    ]);
    expect(b3ToHex(c.digest())).toBe(vector('DIRECTORY_COMPLICATED').digest);
    expect([...c].map((e) => Buffer.from(e.name).toString())).toEqual(['.keep', 'aa', 'keep']);
    expect([...c.ofType('directory')].length).toBe(1);
    expect(c.get('nope')).toBeUndefined();
    expect(c.has(utf8('aa'))).toBe(true);
    expect(c.toNode()).toEqual({ type: 'directory', digest: c.digest(), size: 5 });
  });

  it('D = {a: A, b: {a: A}} has size 6 (dirs count 2 + their size)', () => {
    const b = Directory.fromEntries([['a', Directory.EMPTY.toNode()]]);
    const d = Directory.fromEntries([
      ['b', b.toNode()],
      ['a', Directory.EMPTY.toNode()],
    ]);
    expect(b.size).toBe(2);
    expect(d.size).toBe(6);
    expect(b3ToHex(d.digest())).toBe('76cd8b55b37333961c1778ba997e57df92e219926ae5a66c414b810331a77603');
  });

  for (const o of fixtures.otherSizeFormulas.entries) {
    it(`a recorded child size enters the digest: ${o.name}`, () => {
      const base = fixtures.directories.find((d) => o.name.startsWith(d.name.split(' ')[0]!))!;
      const pairs = base.entries.map(
        (e) => [e.name, toNode({ ...e, size: o.childSizes[e.name] ?? e.size })] as const,
      );
      expect(b3ToHex(Directory.fromEntries(pairs).digest())).toBe(o.digest);
    });
  }
});

describe('root Entry messages', () => {
  for (const v of fixtures.rootEntries) {
    it(v.name, () => {
      const name = utf8(v.entryName ?? '');
      const node = toNode(v.node);
      const bytes = encodeEntry(name, node);
      expect(hex(bytes)).toBe(v.protoHex);
      if (v.b64url !== undefined) expect(Buffer.from(bytes).toString('base64url')).toBe(v.b64url);
      const back = decodeEntry(unhex(v.protoHex));
      expect(hex(back.name)).toBe(hex(name));
      expect(nodeEquals(back.node, node)).toBe(true);
      if (v.entryName === undefined) expect(nodeEquals(decodeAnonymousEntry(bytes), node)).toBe(true);
      else expectError('ERR_BAD_NODE', () => decodeAnonymousEntry(bytes), /anonymous/);
    });
  }

  it('encodes an executable file, a directory with size 0 and a directory with a size', () => {
    expect(hex(encodeEntry(new Uint8Array(), fileNode(EMPTY_B3, 0, true)))).toBe(
      `1224${'1220'}${b3ToHex(EMPTY_B3)}2001`,
    );
    // A oneof member that is set is emitted even when its message would be empty apart from the digest.
    expect(hex(encodeEntry(new Uint8Array(), directoryNode(EMPTY_B3, 0)))).toBe(
      `0a22${'1220'}${b3ToHex(EMPTY_B3)}`,
    );
    expect(hex(encodeEntry(utf8('x'), directoryNode(EMPTY_B3, 300)))).toBe(
      `0a280a0178${'1220'}${b3ToHex(EMPTY_B3)}18ac02`,
    );
  });

  it('rejects an empty Entry, invalid names and invalid nodes with ERR_BAD_NODE', () => {
    expectError('ERR_BAD_NODE', () => decodeEntry(new Uint8Array()), /no entry/);
    expectError('ERR_BAD_NODE', () => decodeEntry(proto((w) => fileEntry(w, '..'))), /'\.\.'/);
    expectError(
      'ERR_BAD_NODE',
      () => decodeEntry(proto((w) => fileEntry(w, 'x', D32.subarray(1)))),
      /digest/,
    );
    expectError(
      'ERR_BAD_NODE',
      () => decodeEntry(proto((w) => symEntry(w, 'x', new Uint8Array()))),
      /target/,
    );
    expectError('ERR_BAD_NODE', () => decodeEntry(new Uint8Array([0x0a, 0x05, 0x00])), /length/);
  });

  it('follows prost for repeated oneof members: last kind wins, same kind merges', () => {
    const twoKinds = proto((w) => {
      fileEntry(w, 'f');
      symEntry(w, 's', utf8('t'));
    });
    expect(decodeEntry(twoKinds).node.type).toBe('symlink');
    const merged = proto((w) => {
      entryField(w, 2, utf8('f'), (i) => i.bytesField(2, D32));
      entryField(w, 2, new Uint8Array(), (i) => i.varintField(3, 9).varintField(4, 1));
    });
    expect(decodeEntry(merged).node).toEqual({ type: 'file', digest: D32, size: 9, executable: true });
  });
});

describe('validation helpers', () => {
  it('validateName', () => {
    for (const ok of ['a', '.keep', '...', 'x'.repeat(255)])
      expect(() => validateName(utf8(ok))).not.toThrow();
    expect(() => validateName(new Uint8Array([0xff, 0xfe]))).not.toThrow(); // not UTF-8 is fine
    for (const bad of ['', '.', '..', 'a/b', '/', 'a\0b', 'x'.repeat(256)]) {
      expectError('ERR_BAD_DIRECTORY', () => validateName(utf8(bad)));
    }
  });

  it('validateSymlinkTarget and validateNode', () => {
    expect(() => validateSymlinkTarget(utf8('/abs/../x'))).not.toThrow();
    expect(() => validateSymlinkTarget(new Uint8Array(4095).fill(0x61))).not.toThrow();
    expectError('ERR_BAD_NODE', () => validateSymlinkTarget(new Uint8Array()));
    expectError('ERR_BAD_NODE', () => validateSymlinkTarget(utf8('a\0')));
    expectError('ERR_BAD_NODE', () => validateSymlinkTarget(new Uint8Array(4096).fill(0x61)));
    expectError('ERR_BAD_NODE', () =>
      validateNode({ type: 'file', digest: D32, size: -1, executable: false }),
    );
    expectError('ERR_BAD_NODE', () => validateNode({ type: 'directory', digest: D32, size: 2 ** 53 }));
    expectError('ERR_BAD_NODE', () => fileNode(new Uint8Array(31), 0));
  });

  it('Directory.fromEntries rejects duplicates, bad names and bad nodes', () => {
    expectError(
      'ERR_BAD_DIRECTORY',
      () =>
        Directory.fromEntries([
          ['a', fileNode(D32, 1)],
          ['a', directoryNode(D32, 0)],
        ]),
      /duplicate/,
    );
    expectError('ERR_BAD_DIRECTORY', () => Directory.fromEntries([['a/b', fileNode(D32, 1)]]), /'\/'/);
    expectError('ERR_BAD_DIRECTORY', () =>
      Directory.fromEntries([['a', { type: 'symlink', target: new Uint8Array() }]]),
    );
    expectError(
      'ERR_BAD_DIRECTORY',
      () =>
        Directory.fromEntries([
          ['a', directoryNode(D32, Number.MAX_SAFE_INTEGER - 2)],
          ['b', fileNode(D32, 0)],
        ]),
      /size overflow/,
    );
  });

  it('Directory.fromEntries copies its inputs', () => {
    const digest = D32.slice();
    const dir = Directory.fromEntries([
      { name: utf8('f'), node: { type: 'file', digest, size: 1, executable: false } },
    ]);
    const before = b3ToHex(dir.digest());
    digest[0] = 0;
    expect(b3ToHex(dir.digest())).toBe(before);
    expect(b3ToHex(Directory.fromEntries([['f', fileNode(D32, 1)]]).digest())).toBe(before);
  });
});

describe('decodeDirectory validation (ERR_BAD_DIRECTORY)', () => {
  it('rejects unsorted lists', () => {
    badDir(
      proto((w) => {
        dirEntry(w, 'b');
        dirEntry(w, 'a');
      }),
      /not sorted/,
    );
    badDir(
      proto((w) => {
        fileEntry(w, 'b');
        fileEntry(w, 'a');
      }),
      /not sorted/,
    );
    badDir(
      proto((w) => {
        symEntry(w, 'b', utf8('t'));
        symEntry(w, 'a', utf8('t'));
      }),
      /not sorted/,
    );
    // Bytewise: 'B' (0x42) < 'a' (0x61); "a" < "ab".
    expect(
      decodeDirectory(
        proto((w) => {
          fileEntry(w, 'B');
          fileEntry(w, 'a');
        }),
      ).count,
    ).toBe(2);
    badDir(
      proto((w) => {
        fileEntry(w, 'ab');
        fileEntry(w, 'a');
      }),
      /not sorted/,
    );
  });

  it('rejects duplicate names within and across lists', () => {
    badDir(
      proto((w) => {
        dirEntry(w, 'a');
        dirEntry(w, 'a');
      }),
      /duplicate/,
    );
    badDir(
      proto((w) => {
        fileEntry(w, 'a');
        fileEntry(w, 'a');
      }),
      /duplicate/,
    );
    badDir(
      proto((w) => {
        dirEntry(w, 'a');
        fileEntry(w, 'a');
      }),
      /duplicate/,
    );
    badDir(
      proto((w) => {
        fileEntry(w, 'z');
        symEntry(w, 'z', utf8('t'));
      }),
      /duplicate/,
    );
  });

  it('rejects bad names', () => {
    badDir(
      proto((w) => fileEntry(w, '.')),
      /'\.'/,
    );
    badDir(
      proto((w) => dirEntry(w, '..')),
      /'\.\.'/,
    );
    badDir(
      proto((w) => fileEntry(w, '')),
      /empty/,
    );
    badDir(
      proto((w) => fileEntry(w, 'a/b')),
      /'\/'/,
    );
    badDir(
      proto((w) => fileEntry(w, 'a\0b')),
      /NUL/,
    );
    badDir(
      proto((w) => fileEntry(w, 'x'.repeat(256))),
      /256 bytes/,
    );
    expect(decodeDirectory(proto((w) => fileEntry(w, 'x'.repeat(255)))).count).toBe(1);
  });

  it('rejects digests that are not 32 bytes', () => {
    badDir(
      proto((w) => dirEntry(w, 'a', D32.subarray(1))),
      /31 bytes/,
    );
    badDir(
      proto((w) => fileEntry(w, 'a', D32.subarray(1))),
      /31 bytes/,
    );
    badDir(
      proto((w) => fileEntry(w, 'a', new Uint8Array())),
      /0 bytes/,
    );
    badDir(
      proto((w) => fileEntry(w, 'a', new Uint8Array(33))),
      /33 bytes/,
    );
  });

  it('rejects bad symlink targets', () => {
    badDir(
      proto((w) => symEntry(w, 'a', new Uint8Array())),
      /empty/,
    );
    badDir(
      proto((w) => symEntry(w, 'a', utf8('x\0y'))),
      /NUL/,
    );
    badDir(
      proto((w) => symEntry(w, 'a', new Uint8Array(4096).fill(0x61))),
      /4096/,
    );
    expect(decodeDirectory(proto((w) => symEntry(w, 'a', new Uint8Array(4095).fill(0x61)))).count).toBe(1);
  });

  it('rejects sizes beyond 2^53-1 and a size sum that overflows', () => {
    // 2^53 as a varint: 0x80 ×7, then 0x10.
    const big = proto((w) =>
      entryField(w, 1, utf8('a'), (i) =>
        i
          .bytesField(2, D32)
          .key(3, 0)
          .raw(new Uint8Array([...new Array(7).fill(0x80), 0x10])),
      ),
    );
    badDir(big, /2\^53/);
    const u64max = proto((w) =>
      entryField(w, 1, utf8('a'), (i) =>
        i
          .bytesField(2, D32)
          .key(3, 0)
          .raw(new Uint8Array([...new Array(9).fill(0xff), 0x01])),
      ),
    );
    badDir(u64max, /2\^53/);
    const max = Number.MAX_SAFE_INTEGER;
    badDir(
      proto((w) => {
        dirEntry(w, 'a', D32, max - 2);
        dirEntry(w, 'b', D32, 0);
      }),
      /size overflow/,
    );
    expect(decodeDirectory(proto((w) => dirEntry(w, 'a', D32, max - 2))).size).toBe(max);
  });

  it('rejects malformed protobuf with offsets', () => {
    badDir(new Uint8Array([0x0a, 0x80]), /truncated varint/);
    badDir(new Uint8Array([0x8a]), /truncated varint/);
    badDir(new Uint8Array([0x0a, 0x05, 0x0a, 0x01]), /length 5/);
    badDir(new Uint8Array([0x0a, 0x03, 0x0a, 0x05, 0x61]), /length 5/); // inner length past its message
    badDir(new Uint8Array([0x0a, ...new Array(9).fill(0xff), 0x01]), /exceeds the remaining/); // 2^64-1
    badDir(new Uint8Array([0x0a, ...new Array(9).fill(0xff), 0x02]), /64 bits/);
    badDir(new Uint8Array([0x12, 0x02, 0x29, 0x00]), /truncated fixed/); // unknown fixed64 in 1 byte
    let offset: number | undefined;
    try {
      decodeDirectory(
        proto((w) => {
          fileEntry(w, 'a');
          w.raw(new Uint8Array([0x12, 0x09]));
        }),
      );
    } catch (e) {
      offset = (e as { offset?: number }).offset;
    }
    expect(offset).toBe(40); // 39 bytes of entry "a", then key 0x12, then the bad length
  });

  it('rejects wrong wire types for known fields, invalid wire types and field 0', () => {
    badDir(new Uint8Array([0x08, 0x01]), /wire type 0, expected 2/); // directories as varint
    badDir(new Uint8Array([0x12, 0x02, 0x08, 0x01]), /wire type 0, expected 2/); // FileEntry.name as varint
    badDir(new Uint8Array([0x12, 0x02, 0x1a, 0x00]), /wire type 2, expected 0/); // FileEntry.size as bytes
    badDir(new Uint8Array([0x0e]), /invalid wire type 6/);
    badDir(new Uint8Array([0x0f]), /invalid wire type 7/);
    badDir(new Uint8Array([0x02, 0x00]), /field number 0/);
    badDir(new Uint8Array([0x2c]), /end group/);
    badDir(new Uint8Array([0x2b, 0x34]), /mismatched end group/);
    badDir(new Uint8Array([0x2b]), /unterminated group/);
  });

  it('skips unknown fields like prost; canonical mode rejects them', () => {
    const keep = unhex(vector('DIRECTORY_WITH_KEEP').protoHex!);
    const unknown = new Uint8Array([
      0x22,
      0x01,
      0xff, // field 4, bytes
      0x28,
      0x96,
      0x01, // field 5, varint
      0x31,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 6, fixed64
      0x3d,
      1,
      2,
      3,
      4, // field 7, fixed32
      0x43,
      0x08,
      0x01,
      0x44, // field 8, group containing a varint
    ]);
    const withUnknown = new Uint8Array([...unknown, ...keep]);
    const dir = decodeDirectory(withUnknown);
    expect(hex(dir.encode())).toBe(hex(keep));
    expect(b3ToHex(dir.digest())).toBe(vector('DIRECTORY_WITH_KEEP').digest);
    expectError(
      'ERR_BAD_DIRECTORY',
      () => decodeDirectory(withUnknown, { canonical: true }),
      /non-canonical/,
    );
    // An unknown field inside an entry message (FileEntry field 9) is skipped too.
    expect(
      decodeDirectory(
        proto((w) => entryField(w, 2, utf8('f'), (i) => i.bytesField(2, D32).varintField(9, 1))),
      ).count,
    ).toBe(1);
  });

  it('accepts fields out of order and non-minimal varints, but not in canonical mode', () => {
    const c = unhex(vector('DIRECTORY_COMPLICATED').protoHex!);
    // symlinks list first, then directories, then files: same Directory, different bytes.
    const reordered = new Uint8Array([
      ...c.subarray(44 + 43),
      ...c.subarray(0, 44),
      ...c.subarray(44, 44 + 43),
    ]);
    const dir = decodeDirectory(reordered);
    expect(hex(dir.encode())).toBe(hex(c));
    expectError('ERR_BAD_DIRECTORY', () => decodeDirectory(reordered, { canonical: true }), /non-canonical/);
    const keep = unhex(vector('DIRECTORY_WITH_KEEP').protoHex!);
    const longLen = new Uint8Array([0x12, 0xa9, 0x00, ...keep.subarray(2)]); // 0x29 as a 2-byte varint
    expect(hex(decodeDirectory(longLen).encode())).toBe(hex(keep));
    expectError('ERR_BAD_DIRECTORY', () => decodeDirectory(longLen, { canonical: true }), /non-canonical/);
  });
});

describe('properties', () => {
  const nameArb = fc
    .uint8Array({ minLength: 1, maxLength: 12 })
    .map((b) => b.map((x) => (x === 0 || x === 0x2f ? 0x61 : x)))
    .filter((b) => !(b.length <= 2 && b.every((x) => x === 0x2e)));
  const digestArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const sizeArb = fc.oneof(fc.constant(0), fc.nat(1000), fc.integer({ min: 0, max: 2 ** 40 }));
  const nodeArb: fc.Arbitrary<Node> = fc.oneof(
    fc.record({ type: fc.constant('directory' as const), digest: digestArb, size: sizeArb }),
    fc.record({
      type: fc.constant('file' as const),
      digest: digestArb,
      size: sizeArb,
      executable: fc.boolean(),
    }),
    fc.record({
      type: fc.constant('symlink' as const),
      target: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => b.map((x) => (x === 0 ? 1 : x))),
    }),
  );
  const entriesArb = fc.uniqueArray(fc.tuple(nameArb, nodeArb), {
    maxLength: 12,
    selector: ([n]) => Buffer.from(n).toString('hex'),
  });

  it('encode → decode → encode is byte-identical, with the same digest and size', () => {
    fc.assert(
      fc.property(entriesArb, (entries) => {
        const dir = Directory.fromEntries(entries);
        const bytes = dir.encode();
        const back = decodeDirectory(bytes, { canonical: true });
        expect(hex(back.encode())).toBe(hex(bytes));
        expect(b3ToHex(back.digest())).toBe(b3ToHex(dir.digest()));
        expect(back.size).toBe(
          entries.reduce((s, [, n]) => s + (n.type === 'directory' ? 2 + n.size : 1), 0),
        );
        const names = [...back].map((e) => Buffer.from(e.name));
        expect(names).toEqual(names.slice().sort(Buffer.compare));
        for (const [name, node] of entries) expect(nodeEquals(back.get(name)!, node)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('the encoding does not depend on input order', () => {
    fc.assert(
      fc.property(
        entriesArb.chain((e) => fc.tuple(fc.constant(e), fc.shuffledSubarray(e, { minLength: e.length }))),
        ([a, b]) => {
          expect(hex(Directory.fromEntries(a).encode())).toBe(hex(Directory.fromEntries(b).encode()));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('Entry round-trips for named and anonymous nodes', () => {
    fc.assert(
      fc.property(fc.option(nameArb, { nil: undefined }), nodeArb, (name, node) => {
        const bytes = encodeEntry(name ?? new Uint8Array(), node);
        const back = decodeEntry(bytes);
        expect(hex(back.name)).toBe(hex(name ?? new Uint8Array()));
        expect(nodeEquals(back.node, node)).toBe(true);
        expect(hex(encodeEntry(back.name, back.node))).toBe(hex(bytes));
      }),
      { numRuns: 200 },
    );
  });
});
