/**
 * Runs the real Nix (2.8.0 from Debian's nix-bin in CI and on the dev machine) as the reference
 * implementation. Nix is always used offline and hermetically: no substituters, experimental commands on,
 * and HOME/XDG dirs plus a default chroot store in a throw-away temp dir, so it writes nothing into the real
 * home and never touches /nix. Commands whose store must outlive one call take `--store <tmpdir>`.
 * When `nix` is missing (or FETCH_CACHE_NO_NIX=1), `nixAvailable()` is false and tests fall back to the
 * goldens in fixtures/nix-goldens/.
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHasher, type HashAlgo } from '../../src/nix/hashing.js';

export const NIX_CONFIG = 'experimental-features = nix-command flakes\nsubstituters =';

export type NixBin = 'nix' | 'nix-store' | 'nix-hash';
export type HashFormat = 'base16' | 'base32' | 'base64' | 'sri';

export const HASH_FORMATS: readonly HashFormat[] = ['base16', 'base32', 'base64', 'sri'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunNixOptions {
  bin?: NixBin;
  input?: Uint8Array | string;
  env?: Record<string, string>;
  cwd?: string;
  /** Receives stdout chunks instead of collecting them (`stdout` is then empty). */
  onStdout?: (chunk: Buffer) => void;
}

let available: boolean | undefined;

/** Whether a working `nix` is on PATH (probed once per process). */
export function nixAvailable(): boolean {
  if (available === undefined) {
    if (process.env.FETCH_CACHE_NO_NIX === '1') available = false;
    else {
      const probe = spawnSync('nix', ['--version'], {
        encoding: 'utf8',
        env: { ...process.env, NIX_CONFIG },
      });
      available = probe.status === 0 && /\bnix\b/i.test(probe.stdout);
    }
  }
  return available;
}

/** The version line of the Nix in use, e.g. `nix (Nix) 2.8.0`. */
export function nixVersion(): string {
  return spawnSync('nix', ['--version'], { encoding: 'utf8' }).stdout.trim();
}

/** Runs a Nix binary with a private temporary HOME, removed afterwards. Never throws on a non-zero exit. */
export async function runNix(args: readonly string[], opts: RunNixOptions = {}): Promise<RunResult> {
  const home = await mkdtemp(join(tmpdir(), 'fc-nix-home-'));
  try {
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      HOME: home,
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local/share'),
      XDG_STATE_HOME: join(home, '.local/state'),
      // A private default store: even store-less commands like `nix-store --generate-binary-cache-key` open
      // one, and as non-root the default would be the (inaccessible) daemon. `--store` still overrides it.
      NIX_CONFIG: `${NIX_CONFIG}\nstore = ${join(home, 'store')}`,
      ...opts.env,
    };
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(opts.bin ?? 'nix', args, { env, cwd: opts.cwd ?? home, stdio: 'pipe' });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => (opts.onStdout ? opts.onStdout(chunk) : out.push(chunk)));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', reject);
      child.on('close', (code, signal) =>
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Like `runNix`, but a non-zero exit is an Error carrying Nix's stderr; returns trimmed stdout. */
export async function runNixOk(args: readonly string[], opts: RunNixOptions = {}): Promise<string> {
  const r = await runNix(args, opts);
  if (r.code !== 0) {
    throw new Error(`${opts.bin ?? 'nix'} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  }
  return r.stdout.trim();
}

/** `nix hash path --type T --<format> PATH`: the NAR hash of a path. */
export function nixHashPath(
  path: string,
  type: HashAlgo = 'sha256',
  format: HashFormat = 'sri',
): Promise<string> {
  return runNixOk(['hash', 'path', '--type', type, `--${format}`, path]);
}

/** `nix hash file --type T --<format> PATH`: the flat hash of a file's contents. */
export function nixHashFile(
  path: string,
  type: HashAlgo = 'sha256',
  format: HashFormat = 'sri',
): Promise<string> {
  return runNixOk(['hash', 'file', '--type', type, `--${format}`, path]);
}

/** `nix-hash --type T --base32 PATH`: the legacy command, NAR hash in nix32. */
export function nixHashLegacy(path: string, type: HashAlgo = 'sha256'): Promise<string> {
  return runNixOk(['--type', type, '--base32', path], { bin: 'nix-hash' });
}

/** sha256 (hex) and byte size of `nix-store --dump PATH`, streamed (the NAR is never held in memory). */
export async function nixDumpDigest(path: string): Promise<{ sha256: string; size: number }> {
  const hasher = createHasher('sha256');
  let size = 0;
  await runNixOk(['--dump', path], {
    bin: 'nix-store',
    onStdout(chunk) {
      hasher.update(chunk);
      size += chunk.length;
    },
  });
  return { sha256: Buffer.from(hasher.digest()).toString('hex'), size };
}

/** Nix's wire encoding of an unsigned 64-bit integer: 8 bytes little-endian. */
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** Nix's wire encoding of a string: length, bytes, zero padding to a multiple of 8. */
function wireString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([u64(bytes.length), bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)]);
}

/**
 * A `nix-store --export` stream holding one path: `1`, the NAR, the magic `NIXE`, the store path, its
 * references, the deriver, `0` (no signature block), and a final `0`. Importing it registers an
 * input-addressed path (no CA), which `nix store verify --sigs-needed 1` only trusts when signed;
 * `nix-store --add` would make a content-addressed path that verifies without any signature.
 */
export function exportStream(storePath: string, nar: Uint8Array, references: readonly string[] = []): Buffer {
  return Buffer.concat([
    u64(1),
    nar,
    u64(0x4558494e),
    wireString(storePath),
    u64(references.length),
    ...references.map(wireString),
    wireString(''),
    u64(0),
    u64(0),
  ]);
}

/** The NAR of a local path, as `nix-store --dump` writes it. */
export async function nixDump(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await runNixOk(['--dump', path], { bin: 'nix-store', onStdout: (c) => chunks.push(c) });
  return Buffer.concat(chunks);
}

/**
 * Registers `localPath`'s contents as the input-addressed `storePath` (e.g. `/nix/store/<32 chars>-name`) in
 * the chroot store at `storeRoot`, via `nix-store --import`.
 */
export async function importInputAddressed(
  storeRoot: string,
  storePath: string,
  localPath: string,
): Promise<void> {
  const nar = await nixDump(localPath);
  await runNixOk(['--store', storeRoot, '--import'], {
    bin: 'nix-store',
    input: exportStream(storePath, nar),
  });
}
