/**
 * The frame format spoken between a database host and its guests over the
 * unix socket of a cache root (db-host.ts, remote-level.ts). One frame:
 *
 *   u32 BE  length of the rest of the frame
 *   u32 BE  request id (a reply carries the id of its request)
 *   u8      op (requests) or status (replies: 0 ok, 1 error)
 *   u32 BE  length of the JSON head, then the head (UTF-8)
 *   u32 BE  part count, then per part: u32 BE length (0xffffffff = absent) and the bytes
 *
 * The JSON head carries small scalars (iterator options, error messages);
 * keys and values travel as binary parts, so nothing is re-encoded.
 */

export const OPS = {
  get: 1,
  getMany: 2,
  has: 3,
  hasMany: 4,
  put: 5,
  del: 6,
  batch: 7,
  clear: 8,
  iterOpen: 9,
  iterNext: 10,
  iterClose: 11,
  iterSeek: 12,
} as const;

export type OpName = keyof typeof OPS;

export interface Frame {
  readonly id: number;
  /** Request op or reply status. */
  readonly code: number;
  readonly head: unknown;
  readonly parts: readonly (Uint8Array | undefined)[];
}

const ABSENT = 0xffffffff;
/** Larger frames are refused: a guest's batch is bounded by the blob writer (~8 MiB). */
export const MAX_FRAME = 1 << 30;

export function encodeFrame(frame: Frame): Buffer {
  const head = Buffer.from(JSON.stringify(frame.head ?? null), 'utf8');
  let size = 4 + 1 + 4 + head.length + 4;
  for (const p of frame.parts) size += 4 + (p?.length ?? 0);
  const out = Buffer.allocUnsafe(4 + size);
  out.writeUInt32BE(size, 0);
  out.writeUInt32BE(frame.id >>> 0, 4);
  out[8] = frame.code;
  out.writeUInt32BE(head.length, 9);
  head.copy(out, 13);
  let at = 13 + head.length;
  out.writeUInt32BE(frame.parts.length, at);
  at += 4;
  for (const p of frame.parts) {
    out.writeUInt32BE(p === undefined ? ABSENT : p.length, at);
    at += 4;
    if (p !== undefined) {
      out.set(p, at);
      at += p.length;
    }
  }
  return out;
}

/** Splits a byte stream into frames; feed it socket data, get whole frames back. */
export class FrameReader {
  private buffered: Buffer[] = [];
  private length = 0;

  push(data: Buffer): Frame[] {
    this.buffered.push(data);
    this.length += data.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.length < 4) break;
      let all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.length);
      this.buffered = [all];
      const size = all.readUInt32BE(0);
      if (size > MAX_FRAME || size < 13) throw new Error(`bad frame length ${size}`);
      if (this.length < 4 + size) break;
      frames.push(decodeBody(all.subarray(4, 4 + size)));
      all = all.subarray(4 + size);
      this.buffered = all.length > 0 ? [all] : [];
      this.length = all.length;
    }
    return frames;
  }
}

function decodeBody(body: Buffer): Frame {
  const id = body.readUInt32BE(0);
  const code = body[4]!;
  const headLen = body.readUInt32BE(5);
  let at = 9;
  const head = JSON.parse(body.subarray(at, at + headLen).toString('utf8')) as unknown;
  at += headLen;
  const count = body.readUInt32BE(at);
  at += 4;
  const parts: (Uint8Array | undefined)[] = [];
  for (let i = 0; i < count; i++) {
    const len = body.readUInt32BE(at);
    at += 4;
    if (len === ABSENT) {
      parts.push(undefined);
      continue;
    }
    if (at + len > body.length) throw new Error('frame part runs past the frame');
    // A copy: the frame buffer is reused and values outlive it.
    parts.push(new Uint8Array(body.subarray(at, at + len)));
    at += len;
  }
  return { id, code, head, parts };
}

/** Range options of an iterator or clear(), with their bounds as binary parts. */
export interface RangeHead {
  bounds: ('gt' | 'gte' | 'lt' | 'lte')[];
  reverse: boolean;
  limit: number;
}

export type RangeOptions = {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  reverse?: boolean;
  limit?: number;
};

export function encodeRange(options: RangeOptions): { head: RangeHead; parts: Uint8Array[] } {
  const head: RangeHead = { bounds: [], reverse: options.reverse === true, limit: options.limit ?? -1 };
  const parts: Uint8Array[] = [];
  for (const b of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = options[b];
    if (v !== undefined) {
      head.bounds.push(b);
      parts.push(v);
    }
  }
  return { head, parts };
}

export function decodeRange(head: RangeHead, parts: readonly (Uint8Array | undefined)[]): RangeOptions {
  const out: RangeOptions = { reverse: head.reverse, limit: head.limit };
  head.bounds.forEach((b, i) => {
    const v = parts[i];
    if (v !== undefined) out[b] = v;
  });
  return out;
}
