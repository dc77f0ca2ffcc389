/**
 * FastCDC content-defined chunking (Xia et al., "The Design of Fast
 * Content-Defined Chunking for Data Deduplication Based Storage Systems",
 * 2020) with normalised chunking (level 2). Chunk boundaries depend only on
 * nearby content, so an insertion early in a file changes the chunks around
 * it and not every chunk after it: versions of a file share most chunks.
 *
 * The fingerprint is a 32-bit gear hash; the masks test its high bits, which
 * depend on the last 32 bytes. The gear table is fixed forever (derived from a
 * constant seed): changing it would move every boundary and lose dedup against
 * existing stores, though never correctness. test/blob/fastcdc.test.ts keeps
 * the plain reference loop and pins boundaries, so a change shows.
 *
 * Why WebAssembly: the hash is one dependent shift-add per byte plus a table
 * load and a test, and V8 runs that loop from JS at well under half the speed
 * of the same loop in wasm. So `Chunker` runs it in a module of under 1 KiB
 * (src/blob/fastcdc-wasm.ts, assembled byte by byte by
 * scripts/make-fastcdc-wasm.mjs, so building needs only Node; it takes two
 * bytes per step with the fingerprint chain cut to one shift-add), with the
 * JS loop kept as the fallback and for `findBoundary`. Each Chunker copies its
 * input into a pooled wasm memory of about 1 MiB, hashes it there, and hands
 * each chunk out as a view of that memory (the caller copies what it keeps).
 *
 * Parameters: 16/64/256 KiB (min/avg/max), chosen with bench/blob-chunking.mjs.
 * Chunk size barely moves write speed (chunking and BLAKE3 dominate), but
 * dedup of edited files and trees falls fast above a 64 KiB average (snix's
 * 256 KiB stores a third more for an edited file), and smaller chunks mean
 * more keys, longer lists and more per-chunk work.
 */

import {
  FASTCDC_WASM_BASE64,
  FASTCDC_WASM_DATA_ADDR,
  FASTCDC_WASM_FP_ADDR,
  FASTCDC_WASM_GEAR_ADDR,
} from './fastcdc-wasm.js';

export interface ChunkerParams {
  /** No chunk is shorter, except the last one of a blob. */
  minSize: number;
  /** Target mean chunk size; a power of two. */
  avgSize: number;
  /** No chunk is longer. */
  maxSize: number;
}

/** 16/64/256 KiB, chosen by measurement (table above). Not frozen: V8 reads frozen objects slower. */
export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = {
  minSize: 16 << 10,
  avgSize: 64 << 10,
  maxSize: 256 << 10,
};

/** The gear table as int32: V8 keeps int32 arithmetic unboxed, uint32 above 2^31 is not. */
const GEAR = makeGearTable();

function makeGearTable(): Int32Array {
  // splitmix32 from a fixed seed.
  const t = new Int32Array(256);
  let s = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = z ^ (z >>> 16);
  }
  return t;
}

/** A mask of `bits` one-bits in the high part of a 32-bit word, as int32. */
function highMask(bits: number): number {
  return bits >= 32 ? -1 : (-1 << (32 - bits)) | 0;
}

function checkParams(p: ChunkerParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  const ok =
    pow2(p.avgSize) &&
    Number.isInteger(p.minSize) &&
    Number.isInteger(p.maxSize) &&
    p.minSize > 0 &&
    p.minSize <= p.avgSize &&
    p.avgSize <= p.maxSize &&
    p.maxSize <= 0x7fffffff;
  if (!ok)
    throw new TypeError('chunker params need 0 < minSize <= avgSize (a power of two) <= maxSize < 2^31');
}

/** Normalised chunking: a stricter mask before avgSize, a looser one after. */
function masks(p: ChunkerParams): { maskS: number; maskL: number } {
  const bits = Math.log2(p.avgSize);
  return { maskS: highMask(bits + 2), maskL: highMask(bits - 2) };
}

/** What a scan returns when no chunk ends in the range. */
const NO_CUT = -1;

/**
 * The plain JS loop (the fallback, and `findBoundary`): hash
 * `data[from..stopEnd)` on from fingerprint `fp`, testing `maskS` before
 * `normalEnd` and `maskL` from there on. Returns the index just past the
 * first byte whose fingerprint has its mask bits all zero, or NO_CUT with the
 * fingerprint left in `state.fp`. Indexes must be below 2^31.
 */
function scanJs(
  data: Uint8Array,
  from: number,
  normalEnd: number,
  stopEnd: number,
  fp: number,
  maskS: number,
  maskL: number,
  state: { fp: number },
): number {
  // The `| 0`s tell V8 these are int32: a loop index it cannot prove int32
  // becomes a float64 and halves the speed.
  const nEnd = normalEnd | 0;
  const sEnd = stopEnd | 0;
  const mS = maskS | 0;
  const mL = maskL | 0;
  let i = from | 0;
  let h = fp | 0;
  for (; i < nEnd; i++) {
    h = ((h << 1) + GEAR[data[i]!]!) | 0;
    if ((h & mS) === 0) return i + 1;
  }
  for (; i < sEnd; i++) {
    h = ((h << 1) + GEAR[data[i]!]!) | 0;
    if ((h & mL) === 0) return i + 1;
  }
  state.fp = h;
  return NO_CUT;
}

/**
 * Find the end of the first chunk of `data[start..end)`, which is all the
 * input there is; returns an absolute index (`end` if no boundary comes first).
 */
export function findBoundary(
  data: Uint8Array,
  start: number,
  end: number,
  p: ChunkerParams = DEFAULT_CHUNKER_PARAMS,
): number {
  const { maskS, maskL } = masks(p);
  const stopEnd = Math.min(start + p.maxSize, end);
  const from = Math.min(start + p.minSize, end);
  const normalEnd = Math.min(start + p.avgSize, end);
  const cut = scanJs(data, from, normalEnd, stopEnd, 0, maskS, maskL, { fp: 0 });
  return cut === NO_CUT ? stopEnd : cut;
}

// --- scan engines: a buffer to hold the current chunk, and a loop over it ---

/** Where chunk bytes start in an engine's buffer (below: the wasm gear table and result slot). */
const DATA = FASTCDC_WASM_DATA_ADDR;
/** A new engine's room for data: copies into it go in pieces of up to this size. */
const WINDOW = 1 << 20;
const WASM_PAGE = 65536;
/**
 * Engine buffers stay below 2 GiB, so indexes are int32 in both loops and the
 * wasm result is never negative but for NO_CUT; a chunk longer than that
 * cannot be held (it takes a maxSize near 2^31).
 */
const MAX_BUFFER = 2 ** 31 - WASM_PAGE;
/** Idle engines kept per kind for the next Chunker, and the largest buffer worth keeping. */
const POOL_SIZE = 4;
const POOL_MAX_BUFFER = 16 << 20;

interface ScanEngine {
  /** The buffer; data lives from DATA on. Replaced by `grow`. */
  bytes: Uint8Array;
  /** Make `bytes` at least `length` long, keeping its contents. */
  grow(length: number): void;
  /** As scanJs over `bytes`; after NO_CUT the fingerprint is in `fp`. */
  scan(from: number, normalEnd: number, stopEnd: number, fp: number, maskS: number, maskL: number): number;
  readonly fp: number;
}

class JsEngine implements ScanEngine {
  bytes = new Uint8Array(DATA + WINDOW);
  private readonly state = { fp: 0 };

  get fp(): number {
    return this.state.fp;
  }

  grow(length: number): void {
    const bytes = new Uint8Array(length);
    bytes.set(this.bytes);
    this.bytes = bytes;
  }

  scan(from: number, normalEnd: number, stopEnd: number, fp: number, maskS: number, maskL: number): number {
    return scanJs(this.bytes, from, normalEnd, stopEnd, fp, maskS, maskL, this.state);
  }
}

/** The parts of the WebAssembly JS API used here (the project's TS lib has no DOM types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: object };
}
/** What src/blob/fastcdc-wasm.ts's module exports. */
interface ScanModuleExports {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
  readonly scan: (
    from: number,
    normalEnd: number,
    stopEnd: number,
    fp: number,
    maskS: number,
    maskL: number,
  ) => number;
}

/** Compiled once at load (synchronously: the module is under 1 KiB); undefined without WebAssembly. */
const newWasmInstance = compileScanModule();

function compileScanModule(): (() => ScanModuleExports) | undefined {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) return undefined;
  try {
    const module = new api.Module(Buffer.from(FASTCDC_WASM_BASE64, 'base64'));
    return () => new api.Instance(module).exports as ScanModuleExports;
  } catch {
    return undefined; // e.g. wasm code generation disallowed
  }
}

/** The wasm loop: each engine is an instance with its own memory (gear table, then data). */
class WasmEngine implements ScanEngine {
  // Views of the memory, set by `grow`.
  bytes!: Uint8Array;
  private words!: Int32Array;
  private readonly memory: ScanModuleExports['memory'];
  private readonly run: ScanModuleExports['scan'];

  constructor(instance: ScanModuleExports) {
    this.memory = instance.memory;
    this.run = instance.scan;
    this.grow(DATA + WINDOW);
    this.words.set(GEAR, FASTCDC_WASM_GEAR_ADDR >> 2);
  }

  get fp(): number {
    return this.words[FASTCDC_WASM_FP_ADDR >> 2]!;
  }

  grow(length: number): void {
    const pages = Math.ceil(length / WASM_PAGE) - this.memory.buffer.byteLength / WASM_PAGE;
    if (pages > 0) this.memory.grow(pages);
    // Growing detaches the old buffer: views must be made anew.
    this.bytes = new Uint8Array(this.memory.buffer);
    this.words = new Int32Array(this.memory.buffer, 0, DATA >> 2);
  }

  scan(from: number, normalEnd: number, stopEnd: number, fp: number, maskS: number, maskL: number): number {
    return this.run(from, normalEnd, stopEnd, fp, maskS, maskL);
  }
}

/** Which loop a Chunker runs: 'wasm' wherever WebAssembly is available, else 'js'. */
export type ScanEngineName = 'wasm' | 'js';

/** The engines available here, the default first. For tests and benchmarks. */
export const SCAN_ENGINES: readonly ScanEngineName[] = newWasmInstance ? ['wasm', 'js'] : ['js'];

const idleEngines: Record<ScanEngineName, ScanEngine[]> = { wasm: [], js: [] };

function acquireEngine(name: ScanEngineName): ScanEngine {
  const idle = idleEngines[name].pop();
  if (idle !== undefined) return idle;
  return name === 'wasm' && newWasmInstance ? new WasmEngine(newWasmInstance()) : new JsEngine();
}

function releaseEngine(name: ScanEngineName, engine: ScanEngine): void {
  const idle = idleEngines[name];
  if (idle.length < POOL_SIZE && engine.bytes.length <= POOL_MAX_BUFFER) idle.push(engine);
}

/** Set only while createChunker runs `new Chunker`. */
let engineForNextChunker: ScanEngineName | undefined;

/** A Chunker on a given engine, to compare them (tests, benchmarks); `new Chunker` picks the default. */
export function createChunker(
  engine: ScanEngineName,
  params: ChunkerParams = DEFAULT_CHUNKER_PARAMS,
): Chunker {
  if (!SCAN_ENGINES.includes(engine)) throw new TypeError(`scan engine ${engine} is not available`);
  engineForNextChunker = engine;
  try {
    return new Chunker(params);
  } finally {
    engineForNextChunker = undefined;
  }
}

/**
 * A streaming chunker: push bytes in any pieces, and each chunk they complete
 * is handed to `emit` as a view of the scan buffer, valid only during that
 * call (the caller copies what it keeps; the input may be reused at once).
 * Each byte is copied into the scan buffer and hashed once there; nothing is
 * allocated per chunk. The buffer (about 1 MiB, holding the current chunk)
 * comes from a small pool on the first push and goes back on `finish()`.
 */
export class Chunker {
  readonly params: ChunkerParams;
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly engineName: ScanEngineName = engineForNextChunker ?? SCAN_ENGINES[0]!;
  private engine: ScanEngine | undefined;
  /** The current chunk is engine.bytes[start..fill), all of it hashed, to fingerprint `fp`. */
  private start = DATA;
  private fill = DATA;
  private fp = 0;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) {
    checkParams(params);
    this.params = { minSize: params.minSize, avgSize: params.avgSize, maxSize: params.maxSize };
    ({ maskS: this.maskS, maskL: this.maskL } = masks(params));
  }

  /** Feed bytes; each chunk they complete goes to `emit` (a view, valid during the call). */
  push(data: Uint8Array, emit: (chunk: Uint8Array) => void): void {
    if (data.length === 0) return;
    this.engine ??= acquireEngine(this.engineName);
    const e = this.engine;
    if (this.start === this.fill) this.start = this.fill = DATA;
    let pos = 0;
    while (pos < data.length) {
      if (this.fill === e.bytes.length) this.makeRoom(e);
      const n = Math.min(data.length - pos, e.bytes.length - this.fill);
      e.bytes.set(n === data.length ? data : data.subarray(pos, pos + n), this.fill);
      this.scanTo(e, this.fill + n, emit);
      pos += n;
    }
  }

  /** End of input: the remaining bytes, if any, go to `emit` as the final chunk. */
  finish(emit: (chunk: Uint8Array) => void): void {
    const e = this.engine;
    if (e === undefined) return;
    this.engine = undefined;
    try {
      if (this.fill > this.start) emit(e.bytes.subarray(this.start, this.fill));
    } finally {
      this.start = this.fill = DATA;
      this.fp = 0;
      releaseEngine(this.engineName, e);
    }
  }

  /** Hash the new bytes [fill, to), cutting off each chunk that ends among them. */
  private scanTo(e: ScanEngine, to: number, emit: (chunk: Uint8Array) => void): void {
    const { minSize, avgSize, maxSize } = this.params;
    let from = this.fill;
    let fp = this.fp;
    while (from < to) {
      const start = this.start;
      const stopEnd = Math.min(start + maxSize, to);
      const i = Math.min(Math.max(start + minSize, from), to);
      const normalEnd = Math.min(Math.max(start + avgSize, from), to);
      let cut = e.scan(i, normalEnd, stopEnd, fp, this.maskS, this.maskL);
      if (cut === NO_CUT) {
        if (stopEnd < start + maxSize) {
          fp = e.fp;
          break;
        }
        cut = stopEnd;
      }
      this.start = from = cut;
      fp = 0;
      emit(e.bytes.subarray(start, cut));
    }
    this.fill = to;
    this.fp = fp;
  }

  /**
   * The buffer is full: move the current chunk to the front, or grow the
   * buffer if the chunk is longer than the space that would free (so each
   * byte is moved at most about once; with the defaults the chunk is at most
   * a quarter of the buffer and it never grows).
   */
  private makeRoom(e: ScanEngine): void {
    const pending = this.fill - this.start;
    const free = this.start - DATA;
    if (free < pending) {
      const length = Math.min(2 * e.bytes.length, MAX_BUFFER);
      if (length > e.bytes.length) {
        e.grow(length);
        return;
      }
      if (free === 0) throw new RangeError('FastCDC chunk too long for a scan buffer (maxSize near 2^31?)');
    }
    e.bytes.copyWithin(DATA, this.start, this.fill);
    this.start = DATA;
    this.fill = DATA + pending;
  }
}
