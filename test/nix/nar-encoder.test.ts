/**
 * NarEncoder against upstream NAR bytes and hashes (snix and go-nix fixtures,
 * Nix's hash-path.sh and manual, NARs dumped by Nix 2.8), plus the encoder's
 * contract: chunking of contents never changes the output, small tokens are
 * batched while large content chunks pass through untouched, and misuse
 * (unsorted or invalid names, wrong sizes, incomplete trees) is a TypeError.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestOf, sha256 } from '../../src/nix/hashing.js';
import { encodeNar, NarEncoder, type NarTree, narSize, writeNarTree } from '../../src/nix/nar/encoder.js';
import { encodeStr } from '../../src/nix/nar/wire.js';
import { type NarVector, vectorToTree } from '../helpers/nar-vectors.js';

const fixtures = JSON.parse(readFileSync(new URL('../../fixtures/nar.json', import.meta.url), 'utf8')) as {
  nar: NarVector[];
};

const utf8 = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Runs `drive` against a fresh encoder and returns every sink call. */
function collect(drive: (e: NarEncoder) => void): Uint8Array[] {
  const out: Uint8Array[] = [];
  const e = new NarEncoder((c) => out.push(c));
  drive(e);
  return out;
}
const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

describe('encodeNar on upstream vectors', () => {
  const withTree = fixtures.nar.filter((v) => v.tree !== undefined);

  it('covers every vector but net-tools, whose 464152-byte NAR is referenced by path only', () => {
    expect(fixtures.nar.filter((v) => v.tree === undefined).map((v) => v.name)).toEqual([
      'net-tools-real-nar',
    ]);
  });

  for (const v of withTree) {
    it(`${v.name}: bytes, size and hashes`, () => {
      const tree = vectorToTree(v.tree!);
      const nar = encodeNar(tree);
      expect(Buffer.from(nar).toString('base64')).toBe(v.narBase64);
      expect(nar.length).toBe(v.narSize);
      expect(narSize(tree)).toBe(v.narSize);
      expect(hex(sha256(nar))).toBe(v.sha256Hex);
      if (v.sha256Sri !== undefined)
        expect(`sha256-${Buffer.from(sha256(nar)).toString('base64')}`).toBe(v.sha256Sri);
      if (v.md5Hex !== undefined) expect(hex(digestOf('md5', nar))).toBe(v.md5Hex);
      if (v.sha1Hex !== undefined) expect(hex(digestOf('sha1', nar))).toBe(v.sha1Hex);
    });
  }

  it('sorts Record and Map entries bytewise, not by UTF-16', () => {
    const leaf: NarTree = { type: 'symlink', target: 'x' };
    const a = encodeNar({
      type: 'directory',
      entries: { '\uFF5E': leaf, '\u{1F600}': leaf, B: leaf, a: leaf },
    });
    const b = encodeNar({
      type: 'directory',
      entries: new Map<string | Uint8Array, NarTree>([
        [utf8.encode('a'), leaf],
        ['\u{1F600}', leaf],
        ['B', leaf],
        [utf8.encode('\uFF5E'), leaf],
      ]),
    });
    expect(hex(a)).toBe(hex(b));
    const order = ['B', 'a', '\uFF5E', '\u{1F600}'].map((n) => Buffer.from(a).indexOf(encodeStr(n)));
    expect([...order].sort((x, y) => x - y)).toEqual(order);
  });
});

describe('NarEncoder streaming', () => {
  it('batches header tokens into one sink call for a small tree', () => {
    const calls = collect((e) => {
      writeNarTree(e, vectorToTree(fixtures.nar.find((v) => v.name === 'mixed-dir-nix-2.8')!.tree!));
      e.finish();
    });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.length).toBe(1456);
  });

  it('passes large content chunks to the sink as the same object, and counts bytes', () => {
    const big = new Uint8Array(100_000).fill(1);
    let e!: NarEncoder;
    const calls = collect((enc) => {
      e = enc;
      enc.regular(true, 200_003);
      enc.contents(big);
      enc.contents(big);
      enc.contents(new Uint8Array([1, 2, 3]));
      enc.finish();
    });
    expect(calls).toHaveLength(4);
    expect(calls[1]).toBe(big);
    expect(calls[2]).toBe(big);
    expect(calls[0]!.length).toBe(56 + 64 + 8);
    expect(calls[3]!.length).toBe(3 + 5 + 16);
    expect(e.bytesWritten).toBe(56 + 64 + 8 + 200_003 + 5 + 16);
    expect(e.bytesWritten).toBe(
      narSize({ type: 'regular', executable: true, contents: new Uint8Array(200_003) }),
    );
  });

  it('accepts sizes as bigint', () => {
    const out = concat(
      collect((e) => {
        e.regular(false, 5n);
        e.contents(utf8.encode('hello'));
        e.finish();
      }),
    );
    expect(Buffer.from(out).toString('base64')).toBe(
      fixtures.nar.find((v) => v.name === 'regular-hello-5-bytes')!.narBase64,
    );
  });

  it('gives identical bytes however the contents are chunked', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 30_000 }),
        // Zero-length pieces are part of the case; at least one cut must be positive, or the loop below
        // never ends (all-zero cuts made the full suite hang now and then, at 100% CPU in this test).
        fc
          .array(fc.integer({ min: 0, max: 12_000 }), { minLength: 1, maxLength: 10 })
          .filter((c) => c.some((n) => n > 0)),
        fc.boolean(),
        (contents, cuts, executable) => {
          const whole = encodeNar({
            type: 'directory',
            entries: { f: { type: 'regular', executable, contents } },
          });
          const parts = collect((e) => {
            e.directory();
            e.entry('f');
            e.regular(executable, contents.length);
            let at = 0;
            for (let i = 0; at < contents.length; i++) {
              const n = Math.min(cuts[i % cuts.length]!, contents.length - at);
              e.contents(contents.subarray(at, at + n));
              at += n;
            }
            e.end();
            e.finish();
          });
          expect(hex(concat(parts))).toBe(hex(whole));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('NarEncoder validation (TypeError on misuse)', () => {
  const inDir = (f: (e: NarEncoder) => void) => () =>
    collect((e) => {
      e.directory();
      f(e);
    });
  const sym = (e: NarEncoder, name: string | Uint8Array) => {
    e.entry(name);
    e.symlink('x');
  };

  it.each([
    [
      'unsorted names',
      inDir((e) => {
        sym(e, 'b');
        sym(e, 'a');
      }),
      /strictly increasing/,
    ],
    [
      'duplicate names',
      inDir((e) => {
        sym(e, 'a');
        sym(e, 'a');
      }),
      /strictly increasing/,
    ],
    [
      'UTF-16-sorted names',
      inDir((e) => {
        sym(e, '\u{1F600}');
        sym(e, '\uFF5E');
      }),
      /strictly increasing/,
    ],
    ['empty name', inDir((e) => e.entry('')), /invalid file name \(empty\)/],
    ['. name', inDir((e) => e.entry('.')), /invalid file name/],
    ['.. name', inDir((e) => e.entry('..')), /invalid file name/],
    ['slash in name', inDir((e) => e.entry('a/b')), /invalid file name/],
    ['NUL in name', inDir((e) => e.entry(new Uint8Array([0x61, 0]))), /invalid file name/],
    ['256-byte name', inDir((e) => e.entry('n'.repeat(256))), /longer than 255/],
    ['empty target', () => collect((e) => e.symlink('')), /invalid symlink target/],
    ['NUL in target', () => collect((e) => e.symlink('a\0')), /invalid symlink target/],
    ['4096-byte target', () => collect((e) => e.symlink('t'.repeat(4096))), /invalid symlink target/],
    [
      'too many content bytes',
      () =>
        collect((e) => {
          e.regular(false, 2);
          e.contents(new Uint8Array(3));
        }),
      /only 2 of 2 remain/,
    ],
    [
      'too few content bytes',
      () =>
        collect((e) => {
          e.regular(false, 2);
          e.contents(new Uint8Array(1));
          e.finish();
        }),
      /finish\(\) called while file contents/,
    ],
    ['negative size', () => collect((e) => e.regular(false, -1)), /size must be/],
    ['fractional size', () => collect((e) => e.regular(false, 1.5)), /size must be/],
    ['size beyond 2^53', () => collect((e) => e.regular(false, 1n << 60n)), /size must be/],
    [
      'a second root',
      () =>
        collect((e) => {
          e.symlink('x');
          e.symlink('y');
        }),
      /root node is complete/,
    ],
    [
      'unclosed directory',
      () =>
        collect((e) => {
          e.directory();
          e.finish();
        }),
      /finish\(\) called while inside a directory/,
    ],
    [
      'entry outside a directory',
      () => collect((e) => e.entry('a')),
      /entry\(\) called while a node description/,
    ],
    [
      'end without a directory',
      () =>
        collect((e) => {
          e.symlink('x');
          e.end();
        }),
      /end\(\) called/,
    ],
    [
      'two nodes for one entry',
      inDir((e) => {
        e.entry('a');
        e.symlink('x');
        e.symlink('y');
      }),
      /symlink\(\) called while inside/,
    ],
    ['finish with nothing', () => collect((e) => e.finish()), /finish\(\) called while a node description/],
    [
      'unsorted tree Map (duplicate after encoding)',
      () =>
        encodeNar({
          type: 'directory',
          entries: new Map<string | Uint8Array, NarTree>([
            ['a', { type: 'symlink', target: 'x' }],
            [utf8.encode('a'), { type: 'symlink', target: 'x' }],
          ]),
        }),
      /strictly increasing/,
    ],
  ])('%s', (_what, run, message) => {
    expect(run).toThrow(TypeError);
    expect(run).toThrow(message);
  });

  it('allows nesting to depth 63 and refuses depth 64', () => {
    const nest = (depth: number) =>
      collect((e) => {
        for (let i = 0; i < depth; i++) {
          e.directory();
          e.entry('d');
        }
        e.symlink('x');
        for (let i = 0; i < depth; i++) e.end();
        e.finish();
      });
    expect(concat(nest(63)).length).toBeGreaterThan(0);
    expect(() => nest(64)).toThrow(/maximum depth of 64/);
  });

  it('keeps working after a rejected call and finish() twice is a no-op', () => {
    const out = concat(
      collect((e) => {
        e.directory();
        sym(e, 'b');
        expect(() => e.entry('a')).toThrow(TypeError);
        sym(e, 'c');
        e.end();
        e.finish();
        e.finish();
      }),
    );
    expect(hex(out)).toBe(
      hex(
        encodeNar({
          type: 'directory',
          entries: { b: { type: 'symlink', target: 'x' }, c: { type: 'symlink', target: 'x' } },
        }),
      ),
    );
  });
});
