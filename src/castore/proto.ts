/**
 * A minimal hand-rolled protobuf wire codec for the castore messages
 * (`snix.castore.v1`). The writer emits exactly what prost emits for our
 * messages (the caller decides field order and omits defaults), so directory
 * digests never depend on a protobuf library. The reader follows prost's
 * decoding rules: varints of at most 10 bytes that fit in a u64, keys that fit
 * in a u32 with a non-zero field number, wire types 0–5 only, groups skipped
 * when unknown, and every length checked against the bytes that remain.
 *
 * Wire format: key = varint(field << 3 | wireType); wire types 0 varint,
 * 1 fixed64, 2 length-delimited (varint length, then bytes), 3/4 start/end
 * group (deprecated), 5 fixed32.
 */

import { type ErrorCode, FetchCacheError } from '../errors.js';

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_SGROUP = 3;
export const WIRE_EGROUP = 4;
export const WIRE_FIXED32 = 5;

/** prost's recursion limit; only nested groups can recurse here. */
const MAX_GROUP_DEPTH = 100;

/** Appends protobuf fields to a growable buffer. Numbers must be safe non-negative integers. */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(`varint value must be a safe non-negative integer, got ${value}`);
    }
    this.reserve(10);
    let v = value;
    // Division instead of `>>>` because values may exceed 32 bits.
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
    return this;
  }

  key(field: number, wireType: number): this {
    return this.varint(field * 8 + wireType);
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  /** A length-delimited field (bytes, string or an already encoded message). */
  bytesField(field: number, bytes: Uint8Array): this {
    return this.key(field, WIRE_LEN).varint(bytes.length).raw(bytes);
  }

  varintField(field: number, value: number): this {
    return this.key(field, WIRE_VARINT).varint(value);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export interface ProtoKey {
  field: number;
  wireType: number;
  /** Absolute offset of the key in the outermost buffer. */
  offset: number;
}

/**
 * Reads protobuf fields from `bytes[start, end)`. Offsets in errors are
 * absolute positions in `bytes`, so sub-readers over embedded messages report
 * positions in the original input. Every failure throws `FetchCacheError`
 * with the code given at construction.
 */
export class ProtoReader {
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly code: ErrorCode,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  fail(message: string, offset = this.pos): never {
    throw new FetchCacheError(this.code, message, { offset });
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /**
   * A varint as a JS number. Values above 2^53-1 come back rounded (but still
   * above `Number.MAX_SAFE_INTEGER`), so callers that need exactness check
   * `Number.isSafeInteger`. Varints that do not fit in a u64 are rejected, as
   * prost rejects them.
   */
  varint(): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint', start);
      const b = this.bytes[this.pos++]!;
      if (i === 9 && b > 1) this.fail('varint overflows 64 bits', start);
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    return this.fail('varint longer than 10 bytes', start);
  }

  /** The next key, or undefined at the end of this reader's range. */
  key(): ProtoKey | undefined {
    if (this.done()) return undefined;
    const offset = this.pos;
    const k = this.varint();
    if (k > 0xffffffff) this.fail('field key exceeds 32 bits', offset);
    const wireType = k % 8;
    const field = Math.floor(k / 8);
    if (wireType > WIRE_FIXED32) this.fail(`invalid wire type ${wireType}`, offset);
    if (field === 0) this.fail('invalid field number 0', offset);
    return { field, wireType, offset };
  }

  /** The payload of a length-delimited field, as a view into the input. */
  lengthDelimited(): Uint8Array {
    const start = this.pos;
    const n = this.varint();
    if (n > this.end - this.pos)
      this.fail(`length ${n} exceeds the remaining ${this.end - this.pos} bytes`, start);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A sub-reader over the next length-delimited field, advancing past it. */
  message(): ProtoReader {
    const payload = this.lengthDelimited();
    const start = this.pos - payload.length;
    return new ProtoReader(this.bytes, this.code, start, this.pos);
  }

  /** Throws unless a known field arrived with the wire type its declaration needs (prost does the same). */
  expectWireType(key: ProtoKey, wireType: number): void {
    if (key.wireType !== wireType) {
      this.fail(`field ${key.field} has wire type ${key.wireType}, expected ${wireType}`, key.offset);
    }
  }

  /** Skips the value of an unknown field, as prost does. */
  skip(key: ProtoKey, depth = 0): void {
    switch (key.wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_SGROUP: {
        if (depth >= MAX_GROUP_DEPTH) this.fail('groups nested too deeply', key.offset);
        for (;;) {
          const inner = this.key();
          if (inner === undefined) this.fail('unterminated group', key.offset);
          if (inner.wireType === WIRE_EGROUP) {
            if (inner.field !== key.field) this.fail('mismatched end group', inner.offset);
            return;
          }
          this.skip(inner, depth + 1);
        }
      }
      default:
        this.fail('unexpected end group', key.offset);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) this.fail('truncated fixed-width field');
    this.pos += n;
  }
}
