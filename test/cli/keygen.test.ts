/**
 * `fetch-cache keygen` against real Nix, both ways. With `nix` installed: Nix signs an input-addressed path
 * in a chroot store with our secret key and `nix store verify` accepts it with our public key (and rejects
 * it with another key's), and keys made by `nix-store --generate-binary-cache-key` parse in our library.
 * Always: a key pair and a signature recorded from Nix 2.8.0 (fixtures/nix-goldens/keys.json) are checked
 * with src/nix/signing.ts. The path is imported with `nix-store --import` rather than `--add` because a
 * content-addressed path passes `nix store verify --sigs-needed 1` without any valid signature.
 */

import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseSRI } from '../../src/nix/hash.js';
import {
  fingerprintPath,
  formatPublicKey,
  parsePublicKey,
  parseSecretKey,
  publicKeyOf,
  signFingerprint,
  verifySignature,
} from '../../src/nix/signing.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { importInputAddressed, nixAvailable, runNix, runNixOk } from '../helpers/nix.js';

interface KeysGolden {
  source: string;
  key: { secretKey: string; publicKey: string };
  otherKey: { secretKey: string; publicKey: string };
  signed: {
    storePath: string;
    narHash: string;
    narSize: number;
    references: string[];
    fingerprint: string;
    signatures: string[];
  };
}

const keys = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/keys.json', import.meta.url), 'utf8'),
) as KeysGolden;

const live = nixAvailable();

/** An arbitrary valid input-addressed store path; the chroot store is private to each test. */
const STORE_PATH = '/nix/store/1b5a9kzcbqhkmshxmbm6yddqn1l3wvhh-keygen-test';

const KEY_TEXT = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/;

function decodedLength(text: string): number {
  const m = KEY_TEXT.exec(text);
  expect(m, `key text ${JSON.stringify(text)}`).not.toBeNull();
  return Buffer.from(m?.[2] ?? '', 'base64').length;
}

let work: string;

beforeAll(() => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
});

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-keygen-'));
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function keygen(
  name: string,
  base: string,
): Promise<{ secret: string; public: string; stdout: string }> {
  const r = await runCli([
    'keygen',
    name,
    '--secret',
    join(work, `${base}.sec`),
    '--public',
    join(work, `${base}.pub`),
  ]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return {
    secret: await readFile(join(work, `${base}.sec`), 'utf8'),
    public: await readFile(join(work, `${base}.pub`), 'utf8'),
    stdout: r.stdout,
  };
}

/** `nix store verify --sigs-needed 1` of `path` in `store`, trusting only `publicKey`. */
async function nixVerify(store: string, publicKey: string, path: string): Promise<number> {
  const args = [
    'store',
    'verify',
    '--store',
    store,
    '--trusted-public-keys',
    publicKey,
    '--sigs-needed',
    '1',
    path,
  ];
  return (await runNix(args)).code;
}

describe('fetch-cache keygen', () => {
  it('writes Nix-format key files (NAME:base64, no trailing newline) and prints the public key', async () => {
    const k = await keygen('cache.example.org-1', 'k');
    expect(k.secret).toMatch(/^cache\.example\.org-1:/);
    expect(k.public).toMatch(/^cache\.example\.org-1:/);
    expect(decodedLength(k.secret)).toBe(64);
    expect(decodedLength(k.public)).toBe(32);
    expect(k.stdout).toBe(`${k.public}\n`);
    // The 64-byte secret is seed ‖ public key; parseSecretKey checks the halves belong together.
    expect(formatPublicKey(publicKeyOf(parseSecretKey(k.secret)))).toBe(k.public);
    // Like Nix (which writes it under umask 077), the secret is readable by its owner only.
    expect((await stat(join(work, 'k.sec'))).mode & 0o077).toBe(0);
  });

  it('makes a fresh key each time', async () => {
    const a = await keygen('n', 'a');
    const b = await keygen('n', 'b');
    expect(a.public).not.toBe(b.public);
    expect(a.secret).not.toBe(b.secret);
  });

  it('never overwrites an existing key file', async () => {
    await writeFile(join(work, 'x.sec'), 'precious');
    const r = await runCli(['keygen', 'n', '--secret', join(work, 'x.sec'), '--public', join(work, 'x.pub')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERR_[A-Z_]+: /);
    expect(await readFile(join(work, 'x.sec'), 'utf8')).toBe('precious');
  });

  it.each([
    ['no NAME', ['keygen', '--secret', 's', '--public', 'p']],
    ['no --public', ['keygen', 'n', '--secret', 's']],
    ['no --secret', ['keygen', 'n', '--public', 'p']],
    ['an unknown flag', ['keygen', 'n', '--secret', 's', '--public', 'p', '--bogus']],
  ])('bad usage (%s) exits 2 and writes nothing', async (_what, args) => {
    const r = await runCli(args, { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    await expect(stat(join(work, 's'))).rejects.toThrow();
    await expect(stat(join(work, 'p'))).rejects.toThrow();
  });
});

describe.runIf(live)('with live Nix', () => {
  it('nix store sign accepts our secret key and nix store verify our public key', async () => {
    const ours = await keygen('fetch-cache-test-1', 'ours');
    const other = await keygen('fetch-cache-test-1', 'other');
    const store = join(work, 'store');
    await writeFile(join(work, 'content'), 'signed with a fetch-cache key\n');
    await importInputAddressed(store, STORE_PATH, join(work, 'content'));

    expect(await nixVerify(store, ours.public, STORE_PATH)).not.toBe(0);
    await runNixOk(['store', 'sign', '--store', store, '-k', join(work, 'ours.sec'), STORE_PATH]);
    expect(await nixVerify(store, ours.public, STORE_PATH)).toBe(0);
    expect(await nixVerify(store, other.public, STORE_PATH)).not.toBe(0);

    // Ed25519 is deterministic: our signer must produce exactly the signature Nix added.
    const [info] = JSON.parse(await runNixOk(['path-info', '--store', store, '--json', STORE_PATH]));
    const fingerprint = fingerprintPath({
      storePath: info.path,
      narHash: parseSRI(info.narHash),
      narSize: info.narSize,
      references: info.references,
    });
    expect(info.signatures).toEqual([signFingerprint(parseSecretKey(ours.secret), fingerprint)]);
  });

  it('our library reads keys made by nix-store --generate-binary-cache-key', async () => {
    const sec = join(work, 'nix.sec');
    const pub = join(work, 'nix.pub');
    await runNixOk(['--generate-binary-cache-key', 'nix-made-1', sec, pub], { bin: 'nix-store' });
    const secretText = await readFile(sec, 'utf8');
    const publicText = await readFile(pub, 'utf8');
    const secret = parseSecretKey(secretText);
    expect(secret.name).toBe('nix-made-1');
    expect(formatPublicKey(publicKeyOf(secret))).toBe(publicText);
    expect(parsePublicKey(publicText)).toEqual(publicKeyOf(secret));

    // A signature Nix makes with that key verifies in our library.
    const store = join(work, 'store');
    await writeFile(join(work, 'content'), 'signed by nix\n');
    await importInputAddressed(store, STORE_PATH, join(work, 'content'));
    await runNixOk(['store', 'sign', '--store', store, '-k', sec, STORE_PATH]);
    const [info] = JSON.parse(await runNixOk(['path-info', '--store', store, '--json', STORE_PATH]));
    const fingerprint = fingerprintPath({
      storePath: info.path,
      narHash: parseSRI(info.narHash),
      narSize: info.narSize,
      references: info.references,
    });
    expect(info.signatures).toHaveLength(1);
    expect(verifySignature([parsePublicKey(publicText)], fingerprint, info.signatures[0])).toBe(true);
  });
});

describe('against the key pair and signature recorded from Nix 2.8.0', () => {
  it('records where it came from', () => {
    expect(keys.source).toMatch(/^recorded from Nix 2\.8\.0 \(Debian nix-bin\)/);
  });

  it('parses the Nix-generated secret key and derives its public key', () => {
    const secret = parseSecretKey(keys.key.secretKey);
    expect(formatPublicKey(publicKeyOf(secret))).toBe(keys.key.publicKey);
    expect(parsePublicKey(keys.key.publicKey)).toEqual(publicKeyOf(secret));
    expect(formatPublicKey(publicKeyOf(parseSecretKey(keys.otherKey.secretKey)))).toBe(
      keys.otherKey.publicKey,
    );
  });

  it('computes the fingerprint Nix signed', () => {
    const s = keys.signed;
    const fp = fingerprintPath({
      storePath: s.storePath,
      narHash: parseSRI(s.narHash),
      narSize: s.narSize,
      references: s.references,
    });
    expect(fp).toBe(s.fingerprint);
  });

  it("verifies Nix's signature, and rejects it under another key or over another fingerprint", () => {
    const [sig] = keys.signed.signatures;
    expect(sig).toBeDefined();
    const pub = parsePublicKey(keys.key.publicKey);
    expect(verifySignature([pub], keys.signed.fingerprint, sig!)).toBe(true);
    const impostor = { name: pub.name, key: parsePublicKey(keys.otherKey.publicKey).key };
    expect(verifySignature([impostor], keys.signed.fingerprint, sig!)).toBe(false);
    expect(verifySignature([parsePublicKey(keys.otherKey.publicKey)], keys.signed.fingerprint, sig!)).toBe(
      false,
    );
    expect(verifySignature([pub], keys.signed.fingerprint.replace(';136;', ';137;'), sig!)).toBe(false);
  });

  it("reproduces Nix's signature byte for byte (Ed25519 is deterministic)", () => {
    expect(signFingerprint(parseSecretKey(keys.key.secretKey), keys.signed.fingerprint)).toBe(
      keys.signed.signatures[0],
    );
  });
});
