/**
 * Byte-exact archive builders for the tarball tests and the fixture generator
 * (scripts/make-archive-fixtures.ts). The tar writer emits raw ustar headers
 * (any name bytes, any type flag, pax and GNU long-name records) and the zip
 * writer emits local headers + central directory with Unix modes, so hostile
 * archives can be built that no honest archiver would write. Everything is
 * deterministic: same input, same bytes.
 */

import { crc32, deflateRawSync } from 'node:zlib';

export type TarType = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | 'x' | 'g' | 'L' | 'K' | 'S' | 'V';

export interface TarFields {
  readonly name: string | Uint8Array;
  readonly type?: TarType;
  readonly mode?: number;
  readonly mtime?: number;
  readonly linkname?: string | Uint8Array;
  readonly content?: string | Uint8Array;
  /** Size written in the header (default: the content length). */
  readonly size?: number;
  /** `ustar\0` + `00` (default), or the GNU magic. */
  readonly magic?: 'ustar' | 'gnu';
  /** Break the checksum on purpose. */
  readonly badChecksum?: boolean;
}

const bytes = (v: string | Uint8Array): Buffer =>
  typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One 512-byte header block. */
export function tarHeader(f: TarFields): Buffer {
  const h = Buffer.alloc(512);
  const name = bytes(f.name);
  if (name.length > 100) throw new TypeError('name over 100 bytes: use paxMember/gnuLongName');
  name.copy(h, 0);
  h.write(octal(f.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  const size = f.size ?? (f.content === undefined ? 0 : bytes(f.content).length);
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(f.mtime ?? 1_600_000_000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(f.type ?? '0', 156, 'latin1');
  if (f.linkname !== undefined) {
    const link = bytes(f.linkname);
    if (link.length > 100) throw new TypeError('linkname over 100 bytes');
    link.copy(h, 157);
  }
  if (f.magic === 'gnu') h.write('ustar  \0', 257, 'latin1');
  else h.write('ustar\x0000', 257, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  if (f.badChecksum) sum += 1;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** Header + content + padding. */
export function tarMember(f: TarFields): Buffer {
  const content = f.content === undefined ? Buffer.alloc(0) : bytes(f.content);
  return Buffer.concat([tarHeader(f), content, pad(content.length)]);
}

/** A pax extended header (`x`) record block carrying `records`, for the member after it. */
export function paxHeader(records: Record<string, string | Uint8Array>, global = false): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), bytes(v), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return tarMember({ name: 'PaxHeaders/x', type: global ? 'g' : 'x', content: Buffer.concat(parts) });
}

/** A GNU `././@LongLink` record (`L` for the name, `K` for the link target). */
export function gnuLong(kind: 'L' | 'K', value: string | Uint8Array): Buffer {
  const content = Buffer.concat([bytes(value), Buffer.alloc(1)]);
  return tarMember({ name: '././@LongLink', type: kind, content, magic: 'gnu' });
}

/** Members, then the two zero blocks that end an archive. */
export function tarArchive(members: readonly Buffer[]): Buffer {
  return Buffer.concat([...members, Buffer.alloc(1024)]);
}

export interface ZipMember {
  readonly name: string | Uint8Array;
  /** Full st_mode (type bits included); default a 0644 regular file. */
  readonly mode?: number;
  readonly content?: string | Uint8Array;
  readonly deflate?: boolean;
  /** Lie about the uncompressed size in both headers. */
  readonly declaredSize?: number;
  /** Lie about the CRC-32. */
  readonly crc?: number;
  /** Unix mtime stored in an Info-ZIP "UT" extra field. */
  readonly mtime?: number;
}

/** A zip archive made on "Unix" (host 3), so external attributes carry st_mode. */
export function zipArchive(members: readonly ZipMember[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = bytes(m.name);
    const raw = m.content === undefined ? Buffer.alloc(0) : bytes(m.content);
    const data = m.deflate ? deflateRawSync(raw) : raw;
    const crc = m.crc ?? crc32(raw);
    const size = m.declaredSize ?? raw.length;
    const extra = Buffer.alloc(9);
    extra.writeUInt16LE(0x5455, 0);
    extra.writeUInt16LE(5, 2);
    extra.writeUInt8(1, 4);
    extra.writeInt32LE(m.mtime ?? 1_600_000_000, 5);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(m.deflate ? 8 : 0, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x5121, 12); // 2020-09-01
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 30, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(m.deflate ? 8 : 0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x5121, 14);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(((m.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, extra, data);
    centrals.push(central, name, extra);
    offset += local.length + name.length + extra.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** An async iterable over `data` in chunks of `size` bytes (downloads arrive in pieces). */
export async function* chunked(data: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, Math.min(data.length, i + size));
}
