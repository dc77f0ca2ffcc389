/**
 * Strict incremental NAR parser (docs/formats.md §1). Bytes are
 * pushed in chunks of any size and each `push` returns the events completed by
 * that chunk; any chunking yields the same events (only `contents` events may
 * be split differently). File contents are never buffered: a `contents` event
 * is a subarray of the pushed chunk, valid as long as the caller keeps that
 * chunk intact. Tokens (≤ 4 KiB) that straddle chunks are assembled in one
 * fixed scratch buffer, so memory stays bounded whatever the length fields say.
 *
 * Everything nix@HEAD rejects is rejected, with Nix-like one-line messages and
 * the offset of the offending token: bad magic, tokens out of order, unknown
 * types, invalid/unsorted/duplicate names, names > 255 bytes, empty/NUL/long
 * symlink targets, nesting ≥ 64, tags > 32 bytes, non-zero padding, trailing
 * bytes after the root, truncation (at `end()`). After an error the parser is
 * poisoned and rethrows it. The macOS case hack is not applied (Linux Nix
 * semantics): names differing only in case are distinct.
 */

import { FetchCacheError } from '../../errors.js';
import {
  compareBytes,
  displayBytes,
  MAX_NAME_LEN,
  MAX_TAG_LEN,
  MAX_TARGET_LEN,
  NAR_MAGIC,
  NAR_MAX_DEPTH,
  padLen,
} from './wire.js';

/** Name components from the root; `[]` is the root itself. */
export type NarPath = readonly Uint8Array[];

/**
 * What `NarParser` reports: directory starts and ends, files (with their contents in pieces) and symlinks,
 * by path.
 */
export type NarEvent =
  | { type: 'directory'; path: NarPath }
  | { type: 'directoryEnd'; path: NarPath }
  /** `narOffset`: offset in the NAR of the first content byte (just after the size field). */
  | { type: 'regular'; path: NarPath; executable: boolean; size: number; narOffset: number }
  | { type: 'contents'; data: Uint8Array }
  | { type: 'regularEnd'; path: NarPath }
  | { type: 'symlink'; path: NarPath; target: Uint8Array };

/** What the next string token is (its meaning and its length limit). */
enum Tok {
  Magic,
  Open,
  TypeTag,
  Type,
  RegTag,
  ExecEmpty,
  ContentsTag,
  NodeClose,
  TargetTag,
  Target,
  DirTag,
  EntryOpen,
  NameTag,
  Name,
  NodeTag,
  EntryClose,
}

/** What the parser is reading at the byte level. */
enum Step {
  Length,
  Body,
  Size,
  Contents,
  Padding,
  Done,
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const MAGIC = ascii(NAR_MAGIC);
const OPEN = ascii('(');
const CLOSE = ascii(')');
const TYPE = ascii('type');
const REGULAR = ascii('regular');
const SYMLINK = ascii('symlink');
const DIRECTORY = ascii('directory');
const EXECUTABLE = ascii('executable');
const CONTENTS = ascii('contents');
const TARGET = ascii('target');
const ENTRY = ascii('entry');
const NAME = ascii('name');
const NODE = ascii('node');

/** Enough for the longest token body: a 4095-byte target plus 1 byte of padding. */
const SCRATCH_SIZE = 4096;
const TWO_32 = 0x1_0000_0000;

/** Little-endian u32 at `at`, as a non-negative number. */
function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x100_0000;
}

/** Whether src[at, at + n) equals `want`. */
function matches(src: Uint8Array, at: number, n: number, want: Uint8Array): boolean {
  if (n !== want.length) return false;
  for (let i = 0; i < n; i++) if (src[at + i] !== want[i]) return false;
  return true;
}

/**
 * A strict streaming NAR parser: fed bytes in any pieces, reports `NarEvent`s; refuses what Nix refuses
 * (ERR_BAD_NAR).
 */
export class NarParser {
  readonly #scratch = new Uint8Array(SCRATCH_SIZE);
  /** Bytes of the current step already copied into `#scratch`. */
  #have = 0;
  /** Bytes consumed from the input so far. */
  #offset = 0;
  /** Offset where the current token started, for error messages. */
  #tokenStart = 0;
  #step: Step = Step.Length;
  #tok: Tok = Tok.Magic;
  /** Body length of the string being read (without padding). */
  #strLen = 0;
  #remaining = 0;
  #fileSize = 0;
  #executable = false;
  readonly #path: Uint8Array[] = [];
  /** Last entry name of each open directory (null before its first entry). */
  readonly #prevNames: (Uint8Array | null)[] = [];
  #error: FetchCacheError | undefined;
  #ended = false;

  /** Bytes consumed so far; once `done`, the NarSize. */
  get bytesConsumed(): number {
    return this.#offset;
  }

  /** True once the root node is complete. */
  get done(): boolean {
    return this.#step === Step.Done;
  }

  /** Parses `chunk`, returning the events it completes. */
  push(chunk: Uint8Array): NarEvent[] {
    if (this.#error !== undefined) throw this.#error;
    if (this.#ended) throw new TypeError('NarParser.push() called after end()');
    const events: NarEvent[] = [];
    try {
      this.#run(chunk, events);
    } catch (e) {
      if (e instanceof FetchCacheError) this.#error = e;
      throw e;
    }
    return events;
  }

  /** Declares the input finished; throws ERR_BAD_NAR unless the archive was complete. */
  end(): NarEvent[] {
    if (this.#error !== undefined) throw this.#error;
    this.#ended = true;
    if (this.#step !== Step.Done) {
      this.#error = new FetchCacheError('ERR_BAD_NAR', 'bad archive: unexpected end-of-file', {
        offset: this.#offset,
      });
      throw this.#error;
    }
    return [];
  }

  #run(chunk: Uint8Array, events: NarEvent[]): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      const step = this.#step;
      if (step === Step.Contents) {
        const n = Math.min(this.#remaining, len - pos);
        events.push({ type: 'contents', data: chunk.subarray(pos, pos + n) });
        pos += n;
        this.#offset += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#startPadding(events);
        continue;
      }
      if (step === Step.Done) {
        throw this.#fail('bad archive: trailing data after the end of the archive', this.#offset);
      }

      const need =
        step === Step.Body
          ? this.#strLen + padLen(this.#strLen)
          : step === Step.Padding
            ? padLen(this.#fileSize)
            : 8;
      // A string's body belongs to the token its length field started.
      if (this.#have === 0 && step !== Step.Body) this.#tokenStart = this.#offset;
      // The step's bytes are src[at, at + need): in the chunk when whole, else assembled in the scratch buffer.
      // Handlers read them in place (no subarray per token: that dominated the cost of many small files).
      let src: Uint8Array;
      let at: number;
      if (this.#have === 0 && len - pos >= need) {
        src = chunk;
        at = pos;
        pos += need;
        this.#offset += need;
      } else {
        const n = Math.min(need - this.#have, len - pos);
        this.#scratch.set(chunk.subarray(pos, pos + n), this.#have);
        this.#have += n;
        pos += n;
        this.#offset += n;
        if (this.#have < need) break;
        this.#have = 0;
        src = this.#scratch;
        at = 0;
      }

      switch (step) {
        case Step.Length:
          this.#onLength(src, at, events);
          break;
        case Step.Body:
          this.#checkZero(src, at + this.#strLen, at + need);
          this.#onString(src, at, events);
          break;
        case Step.Size:
          this.#onSize(src, at, events);
          break;
        case Step.Padding:
          this.#checkZero(src, at, at + need);
          this.#endFile(events);
          break;
      }
    }
  }

  #checkZero(src: Uint8Array, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (src[i] !== 0) throw this.#fail('bad archive: non-zero padding', this.#tokenStart);
    }
  }

  #fail(message: string, offset: number): FetchCacheError {
    return new FetchCacheError('ERR_BAD_NAR', message, { offset });
  }

  /** The length field of a string token, checked against the limit for what is expected. */
  #onLength(src: Uint8Array, at: number, events: NarEvent[]): void {
    const lo = u32(src, at);
    const hi = u32(src, at + 4);
    const max = this.#maxLength();
    if (hi !== 0 || lo > max) {
      const n = hi !== 0 ? (BigInt(hi) << 32n) | BigInt(lo) : lo;
      throw this.#fail(this.#tooLong(n, max), this.#tokenStart);
    }
    this.#strLen = lo;
    // An empty string has no body bytes: complete it now rather than on the next push.
    if (lo === 0) this.#onString(src, at, events);
    else this.#step = Step.Body;
  }

  #maxLength(): number {
    switch (this.#tok) {
      case Tok.Magic:
        return MAGIC.length;
      case Tok.ExecEmpty:
        return 0;
      case Tok.Name:
        return MAX_NAME_LEN;
      case Tok.Target:
        return MAX_TARGET_LEN;
      default:
        return MAX_TAG_LEN;
    }
  }

  #tooLong(n: number | bigint, max: number): string {
    switch (this.#tok) {
      case Tok.Magic:
        return "bad archive: input doesn't look like a Nix archive";
      case Tok.ExecEmpty:
        return 'bad archive: executable marker has non-empty value';
      case Tok.Name:
        return `bad archive: NAR contains a file name of ${n} bytes (maximum ${max})`;
      case Tok.Target:
        return `bad archive: NAR contains a symlink target of ${n} bytes (maximum ${max})`;
      default:
        return `bad archive: tag of ${n} bytes is too long (maximum ${max})`;
    }
  }

  #onSize(src: Uint8Array, at: number, events: NarEvent[]): void {
    const lo = u32(src, at);
    const hi = u32(src, at + 4);
    const size = hi * TWO_32 + lo;
    if (!Number.isSafeInteger(size)) {
      const n = (BigInt(hi) << 32n) | BigInt(lo);
      throw this.#fail(`bad archive: file size ${n} is too large`, this.#tokenStart);
    }
    events.push({
      type: 'regular',
      path: this.#path.slice(),
      executable: this.#executable,
      size,
      narOffset: this.#offset,
    });
    this.#fileSize = size;
    this.#remaining = size;
    if (size === 0) this.#startPadding(events);
    else this.#step = Step.Contents;
  }

  /** After the last content byte; without padding bytes to read the file ends right here. */
  #startPadding(events: NarEvent[]): void {
    if (padLen(this.#fileSize) === 0) this.#endFile(events);
    else this.#step = Step.Padding;
  }

  #endFile(events: NarEvent[]): void {
    events.push({ type: 'regularEnd', path: this.#path.slice() });
    this.#step = Step.Length;
    this.#tok = Tok.NodeClose;
  }

  /** A complete string token src[at, at + #strLen) for the expected `#tok`. */
  #onString(src: Uint8Array, at: number, events: NarEvent[]): void {
    this.#step = Step.Length;
    const n = this.#strLen;
    switch (this.#tok) {
      case Tok.Magic:
        if (!matches(src, at, n, MAGIC))
          throw this.#fail("bad archive: input doesn't look like a Nix archive", 0);
        this.#tok = Tok.Open;
        return;
      case Tok.Open:
        this.#expectTag(src, at, OPEN, '(');
        this.#tok = Tok.TypeTag;
        return;
      case Tok.TypeTag:
        this.#expectTag(src, at, TYPE, 'type');
        this.#tok = Tok.Type;
        return;
      case Tok.Type:
        if (matches(src, at, n, REGULAR)) {
          this.#executable = false;
          this.#tok = Tok.RegTag;
        } else if (matches(src, at, n, SYMLINK)) {
          this.#tok = Tok.TargetTag;
        } else if (matches(src, at, n, DIRECTORY)) {
          events.push({ type: 'directory', path: this.#path.slice() });
          this.#prevNames.push(null);
          this.#tok = Tok.DirTag;
        } else {
          throw this.#fail(`bad archive: unknown file type '${this.#text(src, at)}'`, this.#tokenStart);
        }
        return;
      case Tok.RegTag:
        if (matches(src, at, n, EXECUTABLE)) {
          this.#executable = true;
          this.#tok = Tok.ExecEmpty;
          return;
        }
        this.#expectContents(src, at);
        return;
      case Tok.ExecEmpty:
        this.#tok = Tok.ContentsTag;
        return;
      case Tok.ContentsTag:
        this.#expectContents(src, at);
        return;
      case Tok.NodeClose:
        this.#expectTag(src, at, CLOSE, ')');
        this.#nodeDone();
        return;
      case Tok.TargetTag:
        this.#expectTag(src, at, TARGET, 'target');
        this.#tok = Tok.Target;
        return;
      case Tok.Target: {
        const target = src.slice(at, at + n);
        if (n === 0 || target.includes(0)) {
          throw this.#fail('bad archive: NAR contains invalid symlink target', this.#tokenStart);
        }
        events.push({ type: 'symlink', path: this.#path.slice(), target });
        this.#tok = Tok.NodeClose;
        return;
      }
      case Tok.DirTag:
        if (matches(src, at, n, CLOSE)) {
          events.push({ type: 'directoryEnd', path: this.#path.slice() });
          this.#prevNames.pop();
          this.#nodeDone();
        } else if (matches(src, at, n, ENTRY)) {
          this.#tok = Tok.EntryOpen;
        } else {
          throw this.#fail(
            `bad archive: expected tag 'entry' or ')', got '${this.#text(src, at)}'`,
            this.#tokenStart,
          );
        }
        return;
      case Tok.EntryOpen:
        this.#expectTag(src, at, OPEN, '(');
        this.#tok = Tok.NameTag;
        return;
      case Tok.NameTag:
        this.#expectTag(src, at, NAME, 'name');
        this.#tok = Tok.Name;
        return;
      case Tok.Name:
        this.#onName(src.slice(at, at + n));
        return;
      case Tok.NodeTag:
        this.#expectTag(src, at, NODE, 'node');
        if (this.#path.length >= NAR_MAX_DEPTH) {
          throw this.#fail(
            `bad archive: NAR directory nesting exceeds maximum depth of ${NAR_MAX_DEPTH}`,
            this.#tokenStart,
          );
        }
        this.#tok = Tok.Open;
        return;
      case Tok.EntryClose:
        this.#expectTag(src, at, CLOSE, ')');
        this.#path.pop();
        this.#tok = Tok.DirTag;
        return;
    }
  }

  /** The current string token, printable. */
  #text(src: Uint8Array, at: number): string {
    return displayBytes(src.subarray(at, at + this.#strLen));
  }

  #expectTag(src: Uint8Array, at: number, want: Uint8Array, wantText: string): void {
    if (!matches(src, at, this.#strLen, want)) {
      throw this.#fail(
        `bad archive: expected tag '${wantText}', got '${this.#text(src, at)}'`,
        this.#tokenStart,
      );
    }
  }

  #expectContents(src: Uint8Array, at: number): void {
    if (!matches(src, at, this.#strLen, CONTENTS)) {
      throw this.#fail(
        `bad archive: expected tag 'contents', got '${this.#text(src, at)}'`,
        this.#tokenStart,
      );
    }
    this.#step = Step.Size;
  }

  #onName(name: Uint8Array): void {
    const invalid =
      name.length === 0 ||
      (name.length === 1 && name[0] === 0x2e) ||
      (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) ||
      name.includes(0x2f) ||
      name.includes(0);
    if (invalid) {
      throw this.#fail(
        `bad archive: NAR contains invalid file name '${displayBytes(name)}'`,
        this.#tokenStart,
      );
    }
    const top = this.#prevNames.length - 1;
    const prev = this.#prevNames[top];
    if (prev != null && compareBytes(name, prev) <= 0) {
      throw this.#fail('bad archive: NAR directory is not sorted', this.#tokenStart);
    }
    this.#prevNames[top] = name;
    this.#path.push(name);
    this.#tok = Tok.NodeTag;
  }

  /** A node's closing paren was read: the root ends the archive, others continue with the entry's `)`. */
  #nodeDone(): void {
    if (this.#path.length === 0) {
      this.#step = Step.Done;
    } else {
      this.#tok = Tok.EntryClose;
    }
  }
}

/** All events of a complete in-memory NAR (tests, tiny NARs); throws ERR_BAD_NAR like the streaming parser. */
export function parseNar(nar: Uint8Array): NarEvent[] {
  const p = new NarParser();
  const events = p.push(nar);
  p.end();
  return events;
}
