#!/usr/bin/env node
/**
 * Generates src/blob/fastcdc-wasm.ts: the inner loop of the FastCDC chunker
 * (src/blob/fastcdc.ts) as a tiny WebAssembly module, assembled here byte by
 * byte so that building and checking it needs nothing but Node (no wabt,
 * emscripten or rustc). Run `node scripts/make-fastcdc-wasm.mjs` after
 * changing this file and check in the result; test/blob/fastcdc.test.ts
 * re-runs the generator in memory and fails if the checked-in file differs.
 *
 * The module exports `memory` and, in the text format,
 *
 *   (func $scan (param $i i32) (param $normalEnd i32) (param $stopEnd i32)
 *               (param $fp i32) (param $maskS i32) (param $maskL i32) (result i32))
 *
 * which rolls the gear hash `fp = (fp << 1) + gear[mem[i]]` over
 * mem[i..stopEnd), testing `fp & maskS` before normalEnd and `fp & maskL`
 * from there on. It returns the address just past the first byte whose
 * fingerprint has its mask bits all zero, or -1 having stored the final
 * fingerprint at FP_ADDR. The caller writes the 256 gear entries (i32) at
 * GEAR_ADDR once and the bytes to scan from DATA_ADDR on.
 *
 * The loop takes two bytes per step and computes the second fingerprint as
 * `(fp << 2) + ((g1 << 1) + g2)` rather than from the first one: equal
 * mod 2^32, but the chain from one step's fp to the next is a single
 * shift-add (one x64 `lea`) instead of two, and the rest runs alongside it.
 * That is what made it faster than one byte per step or four, and than a
 * SIMD pre-pass or a two-byte gear table (timed against each other when it
 * was chosen); it is unrolled four steps, with a byte-at-a-time tail.
 */

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Memory layout shared with fastcdc.ts (exported by the generated file). */
export const GEAR_ADDR = 0;
export const FP_ADDR = 1024;
export const DATA_ADDR = 4096;
/** Bytes per iteration of the unrolled loop (an even number). */
const UNROLL = 8;

const OUT = fileURLToPath(new URL('../src/blob/fastcdc-wasm.ts', import.meta.url));

// --- encoding (https://webassembly.github.io/spec/core/binary/) ---

function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n) {
  const out = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

const vec = (items) => [...uleb(items.length), ...items.flat()];
const section = (id, body) => [id, ...uleb(body.length), ...body];
const name = (s) => vec([...new TextEncoder().encode(s)]);

const I32 = 0x7f;
const VOID = 0x40;
const op = {
  block: [0x02, VOID],
  loop: [0x03, VOID],
  if: [0x04, VOID],
  end: [0x0b],
  br: (depth) => [0x0c, ...uleb(depth)],
  brIf: (depth) => [0x0d, ...uleb(depth)],
  return: [0x0f],
  get: (local) => [0x20, ...uleb(local)],
  set: (local) => [0x21, ...uleb(local)],
  // memarg = alignment exponent, offset
  load: (offset) => [0x28, 2, ...uleb(offset)],
  load8u: (offset) => [0x2d, 0, ...uleb(offset)],
  store: (offset) => [0x36, 2, ...uleb(offset)],
  const: (n) => [0x41, ...sleb(n)],
  eqz: [0x45],
  geU: [0x4f],
  gtU: [0x4b],
  add: [0x6a],
  and: [0x71],
  shl: [0x74],
};

// --- the scan function ---

const [I, NORMAL_END, STOP_END, FP, MASK_S, MASK_L] = [0, 1, 2, 3, 4, 5]; // parameters
const [G1, G2, FP1] = [6, 7, 8]; // locals

/** gear[mem[i + k]] */
const gear = (k) => [op.get(I), op.load8u(k), op.const(2), op.shl, op.load(GEAR_ADDR)];
/** if ((fp & mask) == 0) return i + k */
const cutIf = (fp, mask, k) => [
  ...[op.get(fp), op.get(mask), op.and, op.eqz, op.if],
  ...[op.get(I), op.const(k), op.add, op.return, op.end],
];
/** (x << n) + y */
const shlAdd = (x, n, y) => [x, op.const(n), op.shl, y, op.add];
/** Bytes i+k and i+k+1: fp1 = (fp << 1) + g1; fp = (fp << 2) + ((g1 << 1) + g2). */
const pairStep = (mask, k) => [
  ...[gear(k), op.set(G1), gear(k + 1), op.set(G2)],
  ...[shlAdd(op.get(FP), 1, op.get(G1)), op.set(FP1)],
  ...[shlAdd(op.get(FP), 2, shlAdd(op.get(G1), 1, op.get(G2))), op.set(FP)],
  ...[cutIf(FP1, mask, k + 1), cutIf(FP, mask, k + 2)],
];

/** Scan mem[i..end) with `mask`: unrolled while UNROLL bytes remain, then byte by byte. */
function phase(end, mask) {
  const steps = [];
  for (let k = 0; k < UNROLL; k += 2) steps.push(pairStep(mask, k));
  const advance = (n) => [op.get(I), op.const(n), op.add, op.set(I)];
  return [
    ...[op.block, op.loop],
    ...[op.get(I), op.const(UNROLL), op.add, op.get(end), op.gtU, op.brIf(1)],
    ...[steps, advance(UNROLL), op.br(0)],
    ...[op.end, op.end],
    ...[op.block, op.loop],
    ...[op.get(I), op.get(end), op.geU, op.brIf(1)],
    ...[shlAdd(op.get(FP), 1, gear(0)), op.set(FP)],
    ...[cutIf(FP, mask, 1), advance(1), op.br(0)],
    ...[op.end, op.end],
  ];
}

const scanBody = [
  phase(NORMAL_END, MASK_S),
  phase(STOP_END, MASK_L),
  [op.const(FP_ADDR), op.get(FP), op.store(0), op.const(-1)],
].flat(Infinity);

/** The module's bytes. */
export function fastcdcWasmBytes() {
  const type = [0x60, ...vec(Array(6).fill([I32])), ...vec([[I32]])];
  const code = [...vec([[...uleb(3), I32]]), ...scanBody, ...op.end];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, vec([type])), // types
    ...section(3, vec([uleb(0)])), // function 0 has type 0
    ...section(5, vec([[0x00, ...uleb(1)]])), // one memory, 1 page minimum, no maximum
    ...section(
      7,
      vec([
        [...name('scan'), 0x00, 0],
        [...name('memory'), 0x02, 0],
      ]),
    ), // exports
    ...section(10, vec([[...uleb(code.length), ...code]])), // code
  ]);
}

/** The text of src/blob/fastcdc-wasm.ts. */
export function fastcdcWasmSource() {
  const base64 = Buffer.from(fastcdcWasmBytes()).toString('base64');
  return `/**
 * GENERATED by scripts/make-fastcdc-wasm.mjs; do not edit. The FastCDC scan
 * loop as a WebAssembly module (exports \`memory\` and \`scan\`; see the script
 * for its contract), and the memory layout fastcdc.ts shares with it.
 */

/** 256 gear entries (i32), written by the caller. */
export const FASTCDC_WASM_GEAR_ADDR = ${GEAR_ADDR};
/** Where \`scan\` leaves the fingerprint when no cut is found. */
export const FASTCDC_WASM_FP_ADDR = ${FP_ADDR};
/** The first address free for data. */
export const FASTCDC_WASM_DATA_ADDR = ${DATA_ADDR};

export const FASTCDC_WASM_BASE64 =
  '${base64}';
`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OUT, fastcdcWasmSource());
  console.log(`wrote ${OUT} (${fastcdcWasmBytes().length} bytes of wasm)`);
}
