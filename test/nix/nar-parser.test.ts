/**
 * NarParser against upstream NAR fixtures (Nix, snix, go-nix, Nix 2.8 dumps)
 * and Nix's own reject/accept corpus, plus hand-built violations of each rule
 * and property tests: chunking never changes the events, every truncation is
 * rejected at end(), corruption only ever yields FetchCacheError, and whatever
 * the parser accepts is canonical (re-encodes to the same bytes).
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FetchCacheError } from '../../src/errors.js';
import { encodeNar, NarEncoder, type NarTree } from '../../src/nix/nar/encoder.js';
import { type NarEvent, NarParser } from '../../src/nix/nar/parser.js';
import { compareBytes, encodeStr } from '../../src/nix/nar/wire.js';
import { narTreeArb } from '../helpers/arbitraries.js';
import { type NarVector, vectorToTree } from '../helpers/nar-vectors.js';

interface ParseVector {
  name: string;
  narBase64: string;
  expect: string;
  errorSubstring?: string;
}
const fixtures = JSON.parse(readFileSync(new URL('../../fixtures/nar.json', import.meta.url), 'utf8')) as {
  nar: NarVector[];
  narParse: ParseVector[];
};

const utf8 = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** A tree in a form `toEqual` can compare: names and bytes as hex, entries in NAR order. */
type Canon =
  | { t: 'r'; x: boolean; c: string }
  | { t: 's'; target: string }
  | { t: 'd'; e: [string, Canon][] };

function canonOfTree(t: NarTree): Canon {
  switch (t.type) {
    case 'regular':
      return { t: 'r', x: t.executable === true, c: hex(t.contents) };
    case 'symlink':
      return { t: 's', target: hex(typeof t.target === 'string' ? utf8.encode(t.target) : t.target) };
    case 'directory': {
      const list: [Uint8Array, NarTree][] =
        t.entries instanceof Map
          ? [...t.entries].map(([k, v]) => [typeof k === 'string' ? utf8.encode(k) : k, v])
          : Object.entries(t.entries).map(([k, v]) => [utf8.encode(k), v]);
      list.sort((a, b) => compareBytes(a[0], b[0]));
      return { t: 'd', e: list.map(([k, v]) => [hex(k), canonOfTree(v)]) };
    }
  }
}

/** Rebuilds the tree from events, checking their shape and each file's narOffset against `nar`. */
function canonOfEvents(events: NarEvent[], nar?: Uint8Array): Canon {
  let root: Canon | undefined;
  const dirs: Extract<Canon, { t: 'd' }>[] = [];
  let file: { node: Extract<Canon, { t: 'r' }>; parts: Uint8Array[]; size: number; got: number } | undefined;
  const place = (path: readonly Uint8Array[], node: Canon): void => {
    expect(path.length).toBe(dirs.length);
    if (path.length === 0) root = node;
    else dirs[dirs.length - 1]!.e.push([hex(path[path.length - 1]!), node]);
  };
  for (const e of events) {
    switch (e.type) {
      case 'directory': {
        const d: Canon = { t: 'd', e: [] };
        place(e.path, d);
        dirs.push(d);
        break;
      }
      case 'directoryEnd':
        expect(e.path.length).toBe(dirs.length - 1);
        dirs.pop();
        break;
      case 'regular': {
        expect(file).toBeUndefined();
        const node: Canon = { t: 'r', x: e.executable, c: '' };
        place(e.path, node);
        file = { node, parts: [], size: e.size, got: 0 };
        if (nar !== undefined) {
          const at = new DataView(nar.buffer, nar.byteOffset + e.narOffset - 8, 8).getBigUint64(0, true);
          expect(Number(at)).toBe(e.size);
        }
        break;
      }
      case 'contents':
        if (e.data.length === 0) throw new Error('empty contents event');
        file!.parts.push(e.data);
        file!.got += e.data.length;
        break;
      case 'regularEnd':
        expect(file!.got).toBe(file!.size);
        file!.node.c = hex(Buffer.concat(file!.parts));
        file = undefined;
        break;
      case 'symlink':
        place(e.path, { t: 's', target: hex(e.target) });
        break;
    }
  }
  expect(dirs).toHaveLength(0);
  return root!;
}

/** Splits `bytes` into consecutive chunks whose sizes cycle through `sizes`. */
function chunks(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes.length === 0 ? bytes.length : sizes[i % sizes.length]!;
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function parseChunks(parts: readonly Uint8Array[]): { events: NarEvent[]; consumed: number } {
  const p = new NarParser();
  const events: NarEvent[] = [];
  for (const c of parts) events.push(...p.push(c));
  events.push(...p.end());
  expect(p.done).toBe(true);
  return { events, consumed: p.bytesConsumed };
}

function parseAll(nar: Uint8Array, sizes: readonly number[] = []): NarEvent[] {
  return parseChunks(chunks(nar, sizes)).events;
}

/** The error parsing `nar` (in `sizes` chunks) raises; fails the test if it parses. */
function parseError(nar: Uint8Array, sizes: readonly number[] = []): FetchCacheError {
  try {
    parseAll(nar, sizes);
  } catch (e) {
    expect(e).toBeInstanceOf(FetchCacheError);
    return e as FetchCacheError;
  }
  throw new Error('expected the NAR to be rejected');
}

/** Raw NAR building for inputs the encoder refuses to produce. */
function raw(...parts: (string | Uint8Array | bigint)[]): Uint8Array {
  const bufs = parts.map((p) => {
    if (typeof p === 'bigint') {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, p, true);
      return b;
    }
    return encodeStr(p);
  });
  return new Uint8Array(Buffer.concat(bufs));
}
const HEAD = ['nix-archive-1', '(', 'type'] as const;
const fileNar = (contents: string) => raw(...HEAD, 'regular', 'contents', contents, ')');
const dirWith = (name: string | Uint8Array) =>
  raw(
    ...HEAD,
    'directory',
    'entry',
    '(',
    'name',
    name,
    'node',
    '(',
    'type',
    'symlink',
    'target',
    'x',
    ')',
    ')',
    ')',
  );

describe('NarParser on upstream NARs', () => {
  const withBytes = fixtures.nar.filter((v) => v.narBase64 !== undefined);

  it('has every nar vector with bytes (net-tools is referenced by path only)', () => {
    expect(fixtures.nar.filter((v) => v.narBase64 === undefined).map((v) => v.name)).toEqual([
      'net-tools-real-nar',
    ]);
    expect(withBytes.length).toBe(17);
  });

  for (const v of withBytes) {
    it(`${v.name}: parses to the described tree under any chunking`, () => {
      const nar = b64(v.narBase64!);
      const want = canonOfTree(vectorToTree(v.tree!));
      for (const sizes of [[], [1], [7], [8], [3, 13, 1, 64]]) {
        const { events, consumed } = parseChunks(chunks(nar, sizes));
        expect(canonOfEvents(events, nar)).toEqual(want);
        expect(consumed).toBe(v.narSize);
      }
    });
  }
});

describe('NarParser on the narParse corpus', () => {
  for (const v of fixtures.narParse) {
    const nar = b64(v.narBase64);
    if (v.expect === 'accept' || v.expect.startsWith('accept ')) {
      it(`${v.name}: accepted`, () => {
        expect(parseAll(nar)).not.toHaveLength(0);
        expect(canonOfEvents(parseAll(nar, [1]), nar)).toEqual(canonOfEvents(parseAll(nar), nar));
      });
    } else if (v.expect === 'reject') {
      it(`${v.name}: rejected with ERR_BAD_NAR`, () => {
        for (const sizes of [[], [1], [5]]) {
          const err = parseError(nar, sizes);
          expect(err.code).toBe('ERR_BAD_NAR');
          expect(err.message).not.toContain('\n');
          expect(err.offset).toBeTypeOf('number');
          if (v.errorSubstring !== undefined && !v.errorSubstring.startsWith('(')) {
            expect(err.message).toContain(v.errorSubstring);
          }
        }
      });
    } else {
      // case-collision: Nix rejects it only with use-case-hack=true (macOS); Linux Nix and we accept it.
      it(`${v.name}: accepted without the macOS case hack`, () => {
        expect(v.expect).toBe('reject when use-case-hack=true');
        expect(parseAll(nar).filter((e) => e.type === 'regular')).toHaveLength(2);
      });
    }
  }
});

describe('NarParser rejects', () => {
  const cases: [string, Uint8Array, string][] = [
    [
      'wrong magic',
      raw('nix-archive-2', '(', 'type', 'regular', 'contents', '', ')'),
      "doesn't look like a Nix archive",
    ],
    ['huge magic length', raw(1n << 40n), "doesn't look like a Nix archive"],
    ['empty input prefix of garbage', new Uint8Array(16).fill(0xff), "doesn't look like a Nix archive"],
    ['unknown type', raw(...HEAD, 'fifo', ')'), "unknown file type 'fifo'"],
    ['missing type tag', raw('nix-archive-1', '(', 'typ', 'regular'), "expected tag 'type', got 'typ'"],
    ['tag longer than 32 bytes', raw(...HEAD, 'x'.repeat(33)), 'tag of 33 bytes is too long'],
    ['absurd tag length', raw(...HEAD, 0xffff_ffff_ffff_ffffn), 'tag of 18446744073709551615 bytes'],
    [
      'non-empty executable marker',
      raw(...HEAD, 'regular', 'executable', 'x'),
      'executable marker has non-empty value',
    ],
    [
      'directory without closing',
      raw(...HEAD, 'directory', 'nope'),
      "expected tag 'entry' or ')', got 'nope'",
    ],
    ['name longer than 255 bytes', dirWith('n'.repeat(256)), 'file name of 256 bytes (maximum 255)'],
    [
      'empty symlink target',
      raw(...HEAD, 'symlink', 'target', '', ')'),
      'NAR contains invalid symlink target',
    ],
    [
      'NUL in symlink target',
      raw(...HEAD, 'symlink', 'target', 'a\0b', ')'),
      'NAR contains invalid symlink target',
    ],
    [
      'symlink target over 4095 bytes',
      raw(...HEAD, 'symlink', 'target', 't'.repeat(4096), ')'),
      'symlink target of 4096',
    ],
    [
      'non-zero string padding',
      (() => {
        const b = dirWith('abc');
        b[Buffer.from(b).indexOf('abc') + 3] = 1;
        return b;
      })(),
      'non-zero padding',
    ],
    ['trailing bytes after the root', Buffer.concat([fileNar('hi'), new Uint8Array(8)]), 'trailing data'],
    [
      'file size beyond 2^53',
      raw(...HEAD, 'regular', 'contents', 1n << 60n),
      'file size 1152921504606846976 is too large',
    ],
    ['truncated', fileNar('hello').subarray(0, 100), 'unexpected end-of-file'],
    ['empty input', new Uint8Array(0), 'unexpected end-of-file'],
  ];
  for (const [what, nar, message] of cases) {
    it(what, () => {
      for (const sizes of [[], [1], [9]]) {
        const err = parseError(nar, sizes);
        expect(err.code).toBe('ERR_BAD_NAR');
        expect(err.message).toContain(message);
        expect(err.message.startsWith('bad archive: ')).toBe(true);
      }
    });
  }

  it('reports the offset of the offending token', () => {
    const nar = raw(...HEAD, 'fifo');
    expect(parseError(nar).offset).toBe(56);
    expect(parseError(fileNar('hello').subarray(0, 100)).offset).toBe(100);
  });

  it('shows control characters escaped, keeping messages on one line', () => {
    const err = parseError(dirWith('a\nb/c'));
    expect(err.message).toBe("bad archive: NAR contains invalid file name 'a\\x0ab/c'");
  });

  it('compares names bytewise: "é" (c3 a9) sorts after "z", "B" before "a"', () => {
    const two = (a: string, b: string) =>
      raw(
        ...HEAD,
        'directory',
        'entry',
        '(',
        'name',
        a,
        'node',
        '(',
        'type',
        'symlink',
        'target',
        'x',
        ')',
        ')',
        'entry',
        '(',
        'name',
        b,
        'node',
        '(',
        'type',
        'symlink',
        'target',
        'x',
        ')',
        ')',
        ')',
      );
    expect(parseAll(two('z', 'é'))).toHaveLength(4);
    expect(parseAll(two('B', 'a'))).toHaveLength(4);
    expect(parseError(two('é', 'z')).message).toBe('bad archive: NAR directory is not sorted');
    expect(parseError(two('a', 'a')).message).toBe('bad archive: NAR directory is not sorted');
    // UTF-16 order puts U+1F600 (d83d de00) before U+FF5E; UTF-8 bytes (f0 9f 98 80 > ef bd 9e) do not.
    expect(parseError(two('\u{1F600}', '\uFF5E')).message).toBe('bad archive: NAR directory is not sorted');
  });

  it('accepts nesting to depth 63 and rejects depth 64 (narMaxDepth)', () => {
    const nested = (depth: number): Uint8Array => {
      const parts: string[] = [...HEAD];
      for (let i = 0; i < depth; i++) parts.push('directory', 'entry', '(', 'name', 'd', 'node', '(', 'type');
      parts.push('symlink', 'target', 'x', ')');
      for (let i = 0; i < depth; i++) parts.push(')', ')');
      return raw(...parts);
    };
    const ok = parseAll(nested(63));
    expect(ok.find((e) => e.type === 'symlink')!.path).toHaveLength(63);
    expect(parseError(nested(64)).message).toBe(
      'bad archive: NAR directory nesting exceeds maximum depth of 64',
    );
  });

  it('stays poisoned after an error', () => {
    const p = new NarParser();
    expect(() => p.push(raw('nope'))).toThrow(FetchCacheError);
    expect(() => p.push(new Uint8Array(8))).toThrow("doesn't look like a Nix archive");
    expect(() => p.end()).toThrow("doesn't look like a Nix archive");
  });
});

describe('NarParser streaming', () => {
  it('hands out file contents as views of the pushed chunk, never copies', () => {
    const size = 8 * 1024 * 1024;
    const enc: Uint8Array[] = [];
    const e = new NarEncoder((c) => enc.push(c));
    e.regular(false, size);
    const block = new Uint8Array(1024 * 1024).fill(7);
    for (let i = 0; i < 8; i++) e.contents(block);
    e.finish();
    const p = new NarParser();
    let seen = 0;
    for (const c of enc) {
      for (const ev of p.push(c)) {
        if (ev.type === 'contents') {
          expect(ev.data.buffer).toBe(c.buffer);
          seen += ev.data.length;
        }
      }
    }
    p.end();
    expect(seen).toBe(size);
    expect(p.bytesConsumed).toBe(96 + size + 16);
  });

  it('emits each file end as soon as its last byte arrives', () => {
    const nar = fileNar('12345678');
    const p = new NarParser();
    const upToContents = p.push(nar.subarray(0, 104));
    expect(upToContents.map((e) => e.type)).toEqual(['regular', 'contents', 'regularEnd']);
    expect(p.done).toBe(false);
    expect(p.push(nar.subarray(104))).toEqual([]);
    expect(p.done).toBe(true);
  });
});

const treeArb = narTreeArb;

const chunkSizesArb = fc.oneof(
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }),
);

describe('NarParser properties', () => {
  it('encode → parse under random chunking gives back the tree', () => {
    fc.assert(
      fc.property(treeArb, chunkSizesArb, (tree, sizes) => {
        const nar = encodeNar(tree);
        const { events, consumed } = parseChunks(chunks(nar, sizes));
        expect(canonOfEvents(events, nar)).toEqual(canonOfTree(tree));
        expect(consumed).toBe(nar.length);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects every proper prefix at end()', () => {
    const nars = [
      ...fixtures.nar.filter((v) => v.narBase64 !== undefined).map((v) => b64(v.narBase64!)),
    ].slice(0, 17);
    for (const nar of nars) {
      for (let n = 0; n < nar.length; n++) {
        const p = new NarParser();
        p.push(nar.subarray(0, n));
        expect(p.done).toBe(false);
        expect(() => p.end()).toThrow('unexpected end-of-file');
      }
    }
  });

  it('single-byte corruption only ever yields FetchCacheError, and anything accepted is canonical', () => {
    fc.assert(
      fc.property(
        treeArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        chunkSizesArb,
        (tree, where, xor, sizes) => {
          const nar = encodeNar(tree).slice();
          const i = where % nar.length;
          nar[i] = nar[i]! ^ xor;
          let events: NarEvent[];
          try {
            events = parseAll(nar, sizes);
          } catch (e) {
            expect(e).toBeInstanceOf(FetchCacheError);
            expect((e as FetchCacheError).code).toBe('ERR_BAD_NAR');
            return;
          }
          // Only file contents can change undetected; the result must still be the canonical NAR of what was read.
          expect(hex(encodeNarFromCanon(canonOfEvents(events)))).toBe(hex(nar));
        },
      ),
      { numRuns: 500 },
    );
  });
});

function encodeNarFromCanon(c: Canon): Uint8Array {
  const toTree = (n: Canon): NarTree => {
    if (n.t === 'r') return { type: 'regular', executable: n.x, contents: Buffer.from(n.c, 'hex') };
    if (n.t === 's') return { type: 'symlink', target: Buffer.from(n.target, 'hex') };
    return { type: 'directory', entries: new Map(n.e.map(([k, v]) => [Buffer.from(k, 'hex'), toTree(v)])) };
  };
  return encodeNar(toTree(c));
}
