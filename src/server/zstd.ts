/**
 * zstd Content-Encoding of NAR responses, like harmonia, nar-bridge and ncps (the narinfo keeps
 * saying `Compression: none`; the encoding is the transport's). The encoder is the `zstd` command
 * (Debian's zstd package): Node 20's zlib has no zstd, the native zstd packages do not install here,
 * and the WebAssembly build tried (@hpcc-js/wasm-zstd 1.12.5) keeps one stream per process and
 * copies every output through a JavaScript array. A child process streams, compresses on the other
 * core while this thread renders, and each response has its own.
 *
 * A NAR is encoded only when the client accepts zstd (`Accept-Encoding`, q > 0), the response is a
 * whole NAR (a Range is answered from the identity bytes), it is at least ZSTD_MIN_BYTES, an encoder
 * slot is free (at most `maxEncoders` at once; beyond that the identity bytes go out), and it pays
 * off: the first 64 KiB of the NAR deflate (zlib level 1, a cheap stand-in) to at most 90%, which
 * leaves out NARs of compressed or random files. That verdict is remembered per NAR, and replaced
 * by the real one once the NAR has gone out encoded (its first bytes can compress while the rest
 * does not).
 */

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';

/** Smaller NARs go out as they are: framing and a process cost more than they save. */
export const ZSTD_MIN_BYTES = 4096;
/** Bytes of the NAR's start that decide whether it compresses. */
export const SAMPLE_BYTES = 64 * 1024;
const PAYS_OFF_RATIO = 0.9;
const VERDICTS = 4096;

export interface ZstdOptions {
  /** The zstd command; default `zstd` found on PATH. */
  readonly command?: string | undefined;
  /** Compression level (default 1, as harmonia's default). */
  readonly level?: number | undefined;
  /** Encoders running at once (default 4). */
  readonly maxEncoders?: number | undefined;
}

/** The `zstd` executable on PATH, if any. */
export function findZstd(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'zstd');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/**
 * Whether an Accept-Encoding header accepts zstd: listed with q > 0, or `*` with q > 0 and zstd not
 * refused by name (RFC 9110 §12.5.3).
 */
export function acceptsZstd(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  let named: number | undefined;
  let star: number | undefined;
  for (const item of text.split(',')) {
    const [coding = '', ...params] = item.split(';').map((p) => p.trim());
    let q = 1;
    for (const p of params) {
      const m = /^q\s*=\s*(.*)$/i.exec(p);
      // A qvalue is 0 to 1 with up to three decimals; anything else accepts nothing.
      if (m !== null) q = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(m[1]!) ? Number(m[1]) : 0;
    }
    const name = coding.toLowerCase();
    if (name === 'zstd') named = Math.max(named ?? 0, q);
    else if (name === '*') star = Math.max(star ?? 0, q);
  }
  if (named !== undefined) return named > 0;
  return star !== undefined && star > 0;
}

/** Whether a NAR whose first bytes are `sample` is worth compressing. */
export function compresses(sample: Uint8Array): boolean {
  if (sample.length === 0) return false;
  return deflateRawSync(sample, { level: 1 }).length <= sample.length * PAYS_OFF_RATIO;
}

/** The encoder command, the slots, and the remembered verdicts of one server. */
export class ZstdEncoding {
  readonly command: string;
  readonly level: number;
  readonly maxEncoders: number;
  private running = 0;
  private readonly verdicts = new Map<string, boolean>();

  constructor(command: string, options: ZstdOptions = {}) {
    this.command = command;
    this.level = options.level ?? 1;
    this.maxEncoders = options.maxEncoders ?? 4;
    if (!Number.isInteger(this.level) || this.level < 1 || this.level > 19)
      throw new TypeError('zstd level must be an integer from 1 to 19');
    if (!Number.isInteger(this.maxEncoders) || this.maxEncoders < 1)
      throw new TypeError('zstd maxEncoders must be a positive integer');
  }

  get active(): number {
    return this.running;
  }

  /** A slot for one encoder, or `undefined` when all are busy. */
  acquire(): (() => void) | undefined {
    if (this.running >= this.maxEncoders) return undefined;
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
    };
  }

  verdict(nar: string): boolean | undefined {
    return this.verdicts.get(nar);
  }

  /** After a NAR went out encoded: it pays when it came to at most 90% of its size. */
  learn(nar: string, encoded: number, size: number): void {
    this.remember(nar, encoded <= size * PAYS_OFF_RATIO);
  }

  remember(nar: string, pays: boolean): void {
    if (this.verdicts.size >= VERDICTS) this.verdicts.delete(this.verdicts.keys().next().value as string);
    this.verdicts.set(nar, pays);
  }
}
