/**
 * `.narinfo` files (docs/formats.md §7): one store object's metadata in a binary cache,
 * lines of `Key: value\n`. Parsing follows Nix's `NarInfo::NarInfo`
 * (nar-info.cc): key up to the first `:`, value after exactly `": "` up to the
 * newline, the last line newline-terminated, unknown keys kept aside, a missing
 * `Compression` meaning bzip2. A parsed narinfo keeps its lines in file order so
 * it can be served byte-for-byte (legacy signatures can depend on References'
 * file order, §7.2); `formatNarInfoNixOrder` writes new ones the way Nix's
 * `NarInfo::to_string` does.
 */

import { FetchCacheError } from '../errors.js';
import { type Hash, parseAnyPrefixedHash, toNix32Prefixed } from './hash.js';
import { parseStorePath, parseStorePathBaseName } from './store-path.js';

/** One `Key: value` line; the file is `${key}: ${value}\n` for each, in order. */
export interface NarInfoLine {
  key: string;
  value: string;
}

/** The typed content of a narinfo. */
export interface NarInfoFields {
  /** Full store path as written. */
  storePath: string;
  url: string;
  /** `xz`, `zstd`, `none`, … (absent or empty in the file ⇒ `bzip2`). */
  compression: string;
  fileHash?: Hash;
  fileSize?: number;
  narHash: Hash;
  narSize: number;
  /** Base names (`<hash>-<name>`), in file order. */
  references: string[];
  /** Base name of the `.drv`; `unknown-deriver` in the file ⇒ absent. */
  deriver?: string;
  system?: string;
  /** `<keyname>:<base64>` strings, file order, duplicates dropped. */
  sigs: string[];
  /** Content address text (§4), unparsed. */
  ca?: string;
}

/** A parsed `.narinfo`: its known fields, plus every line in order so it can be written back verbatim. */
export interface NarInfo extends NarInfoFields {
  /** Lines with keys this parser does not know, in file order. */
  unknown: [string, string][];
  /** Every line in file order; `formatNarInfo` writes these back verbatim. */
  lines: NarInfoLine[];
}

export interface ParseNarInfoOptions {
  /** The store directory `StorePath` must be in (default `/nix/store`). */
  storeDir?: string;
}

function corrupt(reason: string, line?: number, cause?: unknown): FetchCacheError {
  const where = line === undefined ? '' : ` at line ${line}`;
  return new FetchCacheError(
    'ERR_BAD_NARINFO',
    `NAR info is corrupt: ${reason}${where}`,
    cause === undefined ? {} : { cause },
  );
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Nix's `string2Int<uint64_t>`: decimal digits only; we also require a safe JS integer. */
function parseSize(value: string, key: string, line: number): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n)) throw corrupt(`invalid ${key}`, line);
  return n;
}

/** Split into lines like Nix: `:` then exactly one space, value up to `\n`, final `\n` required. */
function splitLines(text: string): NarInfoLine[] {
  const lines: NarInfoLine[] = [];
  let pos = 0;
  while (pos < text.length) {
    const lineNo = lines.length + 1;
    const eol = text.indexOf('\n', pos);
    if (eol < 0) throw corrupt("expecting '\\n'", lineNo);
    const colon = text.indexOf(':', pos);
    if (colon < 0 || colon > eol) throw corrupt("expecting ':'", lineNo);
    if (text[colon + 1] !== ' ') throw corrupt("expecting ': ' after the key", lineNo);
    lines.push({ key: text.slice(pos, colon), value: text.slice(colon + 2, eol) });
    pos = eol + 1;
  }
  return lines;
}

function parseBaseName(value: string, key: string, line: number): string {
  try {
    parseStorePathBaseName(value);
  } catch (e) {
    throw corrupt(`bad ${key} '${value}': ${messageOf(e)}`, line, e);
  }
  return value;
}

/** Parses a narinfo; any violation throws ERR_BAD_NARINFO. */
export function parseNarInfo(text: string, options: ParseNarInfoOptions = {}): NarInfo {
  const lines = splitLines(text);
  let storePath: string | undefined;
  let url = '';
  let compression = '';
  let fileHash: Hash | undefined;
  let fileSize: number | undefined;
  let narHash: Hash | undefined;
  let narSize = 0;
  let references: string[] | undefined;
  let deriver: string | undefined;
  let system: string | undefined;
  const sigs: string[] = [];
  let ca: string | undefined;
  const unknown: [string, string][] = [];

  const hashField = (value: string, key: string, line: number): Hash => {
    try {
      return parseAnyPrefixedHash(value);
    } catch (e) {
      throw corrupt(`bad ${key} '${value}': ${messageOf(e)}`, line, e);
    }
  };

  for (const [i, { key, value }] of lines.entries()) {
    const line = i + 1;
    switch (key) {
      case 'StorePath':
        try {
          parseStorePath(value, options.storeDir);
        } catch (e) {
          throw corrupt(`bad StorePath '${value}': ${messageOf(e)}`, line, e);
        }
        storePath = value;
        break;
      case 'URL':
        url = value;
        break;
      case 'Compression':
        compression = value;
        break;
      case 'FileHash':
        fileHash = hashField(value, key, line);
        break;
      case 'FileSize':
        fileSize = parseSize(value, key, line);
        break;
      case 'NarHash':
        narHash = hashField(value, key, line);
        break;
      case 'NarSize':
        narSize = parseSize(value, key, line);
        break;
      case 'References':
        // Nix only notices a second line when the first had references; any repeat is corrupt here.
        if (references !== undefined) throw corrupt('extra References', line);
        references = value
          .split(' ')
          .filter((r) => r !== '')
          .map((r) => parseBaseName(r, 'reference', line));
        break;
      case 'Deriver':
        deriver = value === 'unknown-deriver' ? undefined : parseBaseName(value, 'Deriver', line);
        break;
      case 'System':
        system = value;
        break;
      case 'Sig':
        if (!sigs.includes(value)) sigs.push(value);
        break;
      case 'CA':
        if (ca !== undefined) throw corrupt('extra CA', line);
        // Nix's `ContentAddress::parseOpt` reads an empty value as "no CA".
        if (value !== '') ca = value;
        break;
      default:
        unknown.push([key, value]);
    }
  }

  if (storePath === undefined) throw corrupt('StorePath missing');
  if (narHash === undefined) throw corrupt('NarHash missing');
  if (url === '') throw corrupt('URL missing');
  if (narSize === 0) throw corrupt('NarSize missing or zero');

  return {
    storePath,
    url,
    compression: compression === '' ? 'bzip2' : compression,
    ...(fileHash === undefined ? {} : { fileHash }),
    ...(fileSize === undefined ? {} : { fileSize }),
    narHash,
    narSize,
    references: references ?? [],
    ...(deriver === undefined ? {} : { deriver }),
    ...(system === undefined ? {} : { system }),
    sigs,
    ...(ca === undefined ? {} : { ca }),
    unknown,
    lines,
  };
}

function renderLines(lines: readonly NarInfoLine[]): string {
  return lines.map(({ key, value }) => `${key}: ${value}\n`).join('');
}

function compareBytewise(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Nix's writer layout: StorePath, URL, Compression, FileHash, FileSize,
 * NarHash, NarSize, References (sorted, `References: ` when empty), Deriver,
 * System (Hydra's position; Nix itself omits it), Sig (sorted, deduplicated),
 * CA. Hashes as `sha256:<nix32>`.
 */
export function narInfoLinesNixOrder(info: NarInfoFields): NarInfoLine[] {
  const lines: NarInfoLine[] = [
    { key: 'StorePath', value: info.storePath },
    { key: 'URL', value: info.url },
    { key: 'Compression', value: info.compression },
  ];
  if (info.fileHash !== undefined) lines.push({ key: 'FileHash', value: toNix32Prefixed(info.fileHash) });
  if (info.fileSize !== undefined) lines.push({ key: 'FileSize', value: String(info.fileSize) });
  lines.push({ key: 'NarHash', value: toNix32Prefixed(info.narHash) });
  lines.push({ key: 'NarSize', value: String(info.narSize) });
  lines.push({ key: 'References', value: [...new Set(info.references)].sort(compareBytewise).join(' ') });
  if (info.deriver !== undefined) lines.push({ key: 'Deriver', value: info.deriver });
  if (info.system !== undefined) lines.push({ key: 'System', value: info.system });
  for (const sig of [...new Set(info.sigs)].sort(compareBytewise)) lines.push({ key: 'Sig', value: sig });
  if (info.ca !== undefined) lines.push({ key: 'CA', value: info.ca });
  return lines;
}

/** Writes a new narinfo in Nix's layout (see `narInfoLinesNixOrder`). */
export function formatNarInfoNixOrder(info: NarInfoFields): string {
  return renderLines(narInfoLinesNixOrder(info));
}

/**
 * The text of a narinfo: a parsed one (with `lines`) is written back exactly as
 * read, so change it only through the helpers below; one built from fields
 * alone gets Nix's writer layout.
 */
export function formatNarInfo(info: NarInfoFields & { lines?: readonly NarInfoLine[] }): string {
  return info.lines === undefined ? formatNarInfoNixOrder(info) : renderLines(info.lines);
}

/**
 * Adds `Sig` lines to a parsed narinfo, leaving every other line untouched:
 * new signatures go right after the last existing `Sig` line, or, when there is
 * none, before the first `CA` line (where Nix's writer puts them), else at the
 * end. Signatures already present are skipped.
 */
export function addSignatures(info: NarInfo, sigs: readonly string[]): NarInfo {
  const added: string[] = [];
  for (const sig of sigs) {
    if (sig.includes('\n')) throw new TypeError('a signature cannot contain a newline');
    if (!info.sigs.includes(sig) && !added.includes(sig)) added.push(sig);
  }
  if (added.length === 0) return info;
  const lastSig = info.lines.findLastIndex((l) => l.key === 'Sig');
  const firstCa = info.lines.findIndex((l) => l.key === 'CA');
  const at = lastSig >= 0 ? lastSig + 1 : firstCa >= 0 ? firstCa : info.lines.length;
  const lines = [
    ...info.lines.slice(0, at),
    ...added.map((value) => ({ key: 'Sig', value })),
    ...info.lines.slice(at),
  ];
  return { ...info, sigs: [...info.sigs, ...added], lines };
}
