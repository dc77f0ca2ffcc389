#!/usr/bin/env node
/**
 * Records the real-Nix goldens the CLI conformance tests fall back to when `nix` is not installed:
 *
 *   node scripts/record-nix-goldens.mjs          # fixtures/nix-goldens/hash-path.json (and keys.json if absent)
 *   node scripts/record-nix-goldens.mjs --keys   # also re-generate fixtures/nix-goldens/keys.json (new keys)
 *   node scripts/record-nix-goldens.mjs --keys-only
 *
 * hash-path.json: every tree case of test/helpers/trees.ts is built in a temp dir and hashed by Nix:
 * `nix hash path` for every type × format, `nix-hash --type sha256 --base32`, `nix hash file` (regular-file
 * roots) and sha256 + size of `nix-store --dump`. keys.json: a key pair from
 * `nix-store --generate-binary-cache-key`, a second key's public half, and a signature `nix store sign`
 * made over an input-addressed path imported into a chroot store, with its fingerprint.
 *
 * Needs the Nix CLI (2.8.0, Debian nix-bin); runs offline with a throw-away HOME, never touches /nix.
 * The TypeScript helpers are loaded through Vite's module runner (Node 20 cannot import .ts itself).
 */

import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const repo = fileURLToPath(new URL('../', import.meta.url));
const outDir = join(repo, 'fixtures/nix-goldens');
const load = async (rel) =>
  (await runnerImport(join(repo, rel), { configFile: false, logLevel: 'error' })).module;

const trees = await load('test/helpers/trees.ts');
const nix = await load('test/helpers/nix.ts');

if (!nix.nixAvailable()) {
  console.error('record-nix-goldens: `nix` is not available');
  process.exit(1);
}
const version = nix.nixVersion();
const today = new Date().toISOString().slice(0, 10);
const source = `recorded from ${version.replace(/^nix \(Nix\) /, 'Nix ')} (Debian nix-bin) by scripts/record-nix-goldens.mjs, ${today}`;
const TYPES = ['sha256', 'sha512', 'sha1', 'md5'];

async function allFormats(fn, path) {
  const out = {};
  for (const type of TYPES) {
    const values = await Promise.all(nix.HASH_FORMATS.map((format) => fn(path, type, format)));
    out[type] = Object.fromEntries(nix.HASH_FORMATS.map((format, i) => [format, values[i]]));
  }
  return out;
}

async function recordHashes() {
  const work = await mkdtemp(join(tmpdir(), 'fc-record-'));
  const cases = {};
  try {
    for (const treeCase of trees.TREE_CASES) {
      const started = Date.now();
      const root = await trees.buildTree(treeCase, work);
      const entry = { kind: treeCase.kind, description: treeCase.description };
      if (treeCase.large) entry.large = true;
      entry.hashPath = await allFormats(nix.nixHashPath, root);
      entry.nixHashLegacy = { sha256: await nix.nixHashLegacy(root, 'sha256') };
      if (treeCase.kind === 'regular') entry.hashFile = await allFormats(nix.nixHashFile, root);
      entry.narDump = await nix.nixDumpDigest(root);
      if (entry.narDump.sha256 !== entry.hashPath.sha256.base16) {
        throw new Error(`${treeCase.name}: nix-store --dump and nix hash path disagree`);
      }
      if (entry.nixHashLegacy.sha256 !== entry.hashPath.sha256.base32) {
        throw new Error(`${treeCase.name}: nix-hash and nix hash path disagree`);
      }
      cases[treeCase.name] = entry;
      await rm(root, { recursive: true, force: true });
      console.error(`${treeCase.name}: ${entry.hashPath.sha256.sri} (${Date.now() - started} ms)`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await writeFile(
    join(outDir, 'hash-path.json'),
    `${JSON.stringify({ source, nixVersion: version, cases }, null, 2)}\n`,
  );
}

/** A fixed input-addressed path: its hash part is arbitrary but valid nix32; no CA, so signatures matter. */
const SIGNED_PATH = '/nix/store/7b5a9kzcbqhkmshxmbm6yddqn1l3wvhh-golden-signed';
const SIGNED_CONTENT = 'signed by real Nix\n';

async function recordKeys() {
  const work = await mkdtemp(join(tmpdir(), 'fc-record-keys-'));
  try {
    const store = join(work, 'store');
    const gen = (name, base) =>
      nix.runNixOk(
        ['--generate-binary-cache-key', name, join(work, `${base}.sec`), join(work, `${base}.pub`)],
        {
          bin: 'nix-store',
        },
      );
    await gen('golden-key-1', 'golden');
    await gen('other-key-1', 'other');
    const read = (file) => readFile(join(work, file), 'utf8');
    const [secretKey, publicKey, otherSecretKey, otherPublicKey] = await Promise.all(
      ['golden.sec', 'golden.pub', 'other.sec', 'other.pub'].map(read),
    );

    await writeFile(join(work, 'content'), SIGNED_CONTENT);
    await nix.importInputAddressed(store, SIGNED_PATH, join(work, 'content'));
    await nix.runNixOk(['store', 'sign', '--store', store, '-k', join(work, 'golden.sec'), SIGNED_PATH]);
    const [info] = JSON.parse(await nix.runNixOk(['path-info', '--store', store, '--json', SIGNED_PATH]));
    const narHashNix32 = await nix.runNixOk(['hash', 'to-base32', info.narHash]);
    const fingerprint = `1;${info.path};sha256:${narHashNix32};${info.narSize};${info.references.join(',')}`;
    const verify = async (pub) =>
      (
        await nix.runNix([
          'store',
          'verify',
          '--store',
          store,
          '--trusted-public-keys',
          pub,
          '--sigs-needed',
          '1',
          SIGNED_PATH,
        ])
      ).code;
    const signed = {
      storePath: info.path,
      content: SIGNED_CONTENT,
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references,
      fingerprint,
      signatures: info.signatures,
      nixStoreVerifyExit: {
        withPublicKey: await verify(publicKey),
        withOtherPublicKey: await verify(otherPublicKey),
      },
    };
    if (signed.nixStoreVerifyExit.withPublicKey !== 0 || signed.nixStoreVerifyExit.withOtherPublicKey === 0) {
      throw new Error(`unexpected nix store verify results ${JSON.stringify(signed.nixStoreVerifyExit)}`);
    }
    const keys = {
      source,
      note: 'keys from `nix-store --generate-binary-cache-key`; the signature from `nix store sign -k golden.sec` over an input-addressed path imported with `nix-store --import`; fingerprint = 1;path;narHash(sha256:nix32);narSize;references',
      key: { secretKey, publicKey },
      otherKey: { secretKey: otherSecretKey, publicKey: otherPublicKey },
      signed,
    };
    await writeFile(join(outDir, 'keys.json'), `${JSON.stringify(keys, null, 2)}\n`);
    console.error(`keys: ${publicKey} signed ${SIGNED_PATH}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mkdir(outDir, { recursive: true });
const keysExist = await access(join(outDir, 'keys.json')).then(
  () => true,
  () => false,
);
const argv = process.argv.slice(2);
if (argv.includes('--keys') || argv.includes('--keys-only') || !keysExist) await recordKeys();
if (!argv.includes('--keys-only')) await recordHashes();
