/**
 * The numeric header fields of src/fetchers/archive/tar-reader.ts read as tar-stream read them
 * (which is what the archive goldens were recorded against): for any bytes in the mode and mtime
 * fields, the reader gives what `parseInt(<the octal text>, 8)` after leading spaces and NULs, up to
 * a space, gives, or the base-256 value; and the header checksum is checked over the whole block.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../src/fetchers/archive/budget.js';
import { TarReader } from '../../src/fetchers/archive/tar-reader.js';

/** tar-stream's decoding (and this reader's before it read the digits itself), as the reference. */
function reference(field: Uint8Array): number {
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80 && field[0] !== 0xff) return Number.NaN;
    const positive = field[0] === 0x80;
    let sum = 0;
    for (let i = 1; i < field.length; i++) sum = sum * 256 + (positive ? field[i]! : 0xff - field[i]!);
    return positive ? sum : -sum;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end < 0) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (start === end) return 0;
  return Number.parseInt(Buffer.from(field.subarray(start, end)).toString('latin1'), 8);
}

/** One empty regular member `f` with these mode and mtime fields, then the end of the archive. */
function archive(mode: Uint8Array, mtime: Uint8Array, checksum?: number): Buffer {
  const h = Buffer.alloc(512);
  h.write('f', 0, 'latin1');
  h.set(mode, 100);
  h.write('00000000000\0', 124, 'latin1');
  h.set(mtime, 136);
  h[156] = 0x30;
  let sum = 8 * 32;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += h[i]!;
  h.write(`${(checksum ?? sum).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return Buffer.concat([h, Buffer.alloc(1024)]);
}

async function* once(b: Buffer): AsyncGenerator<Uint8Array> {
  yield b;
}

async function first(b: Buffer) {
  return new TarReader(once(b), new ByteBudget(1 << 20, 'unpacked archive')).next();
}

/** Bytes numeric fields hold, and the ones around their edge cases. */
const fieldByte = fc.constantFrom(
  0x00,
  0x20,
  0x09,
  0x2b,
  0x2d,
  0x30,
  0x31,
  0x35,
  0x37,
  0x38,
  0x39,
  0x78,
  0x80,
  0xa0,
  0xff,
);
const field = (n: number) =>
  fc
    .uint8Array({ minLength: n, maxLength: n })
    .chain((random) =>
      fc
        .array(fieldByte, { minLength: n, maxLength: n })
        .map((picked) => Uint8Array.from(picked, (b, i) => (i % 5 === 4 ? random[i]! : b))),
    );

describe('tar header numbers', () => {
  it('mode and mtime read as tar-stream read them, for any field bytes', async () => {
    await fc.assert(
      fc.asyncProperty(field(8), field(12), async (mode, mtime) => {
        const m = await first(archive(mode, mtime));
        expect(m?.header.mode).toEqual(reference(mode));
        expect(m?.header.mtime).toEqual(Math.floor(reference(mtime)));
      }),
      { numRuns: 2000 },
    );
  });

  it('the usual fields: octal with a NUL or a space after, leading spaces or NULs, base-256', async () => {
    const cases: [string | number[], number][] = [
      ['0000644\0', 0o644],
      ['000755 \0', 0o755],
      ['   644 \0', 0o644],
      [[0, 0, 0x36, 0x34, 0x34, 0, 0, 0], 0o644],
      ['0644x\0\0\0', 0o644],
      ['\0\0\0\0\0\0\0\0', 0],
      [[0x80, 0, 0, 0, 0, 0, 0x01, 0xa4], 0o644],
    ];
    for (const [text, want] of cases) {
      const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : Uint8Array.from(text);
      expect((await first(archive(bytes, Buffer.from('14000000000\0', 'latin1'))))?.header.mode).toBe(want);
    }
  });

  it('a wrong checksum is ERR_BAD_ARCHIVE; an all-zero block ends the archive', async () => {
    const good = archive(Buffer.from('0000644\0'), Buffer.from('14000000000\0'));
    const sum = Number.parseInt(good.subarray(148, 154).toString('latin1'), 8);
    await expect(
      first(archive(Buffer.from('0000644\0'), Buffer.from('14000000000\0'), sum + 1)),
    ).rejects.toMatchObject({ code: 'ERR_BAD_ARCHIVE' });
    expect(await first(Buffer.alloc(1024))).toBeUndefined();
  });
});
