/**
 * NARs written by real Nix, ingested into castore and rendered again, come out byte-identical. The input is
 * `nix-store --dump` of every tree case of test/helpers/trees.ts (the >100 MiB file streamed) and of the
 * 10,000-file source tree, when `nix` is installed; without it, our own dump of the same tree, which the
 * test first proves equal to Nix's by the sha256 and size Nix recorded (fixtures/nix-goldens/store.json).
 * The render is compared byte for byte with the input when small, by sha256 + size with the golden always.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { dumpPath } from '../../src/fs/dump.js';
import { ingestNar } from '../../src/nar-render/ingest-nar.js';
import { renderNar } from '../../src/nar-render/render.js';
import { toBase16 } from '../../src/nix/hash.js';
import { createHasher } from '../../src/nix/hashing.js';
import { NIX_CONFIG, nixAvailable } from '../helpers/nix.js';
import { SOURCE_TREE } from '../helpers/source-tree.js';
import { buildTree, TREE_CASES } from '../helpers/trees.js';

interface GoldenCase {
  narDump: { sha256: string; size: number };
}

const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/store.json', import.meta.url), 'utf8'),
) as { cases: Record<string, GoldenCase> };

const live = nixAvailable();
const CASES = [...TREE_CASES, SOURCE_TREE];
/** Inputs up to this size are kept in memory and compared byte for byte. */
const KEEP_MAX = 8 << 20;

let work: string;
const roots = new Map<string, string>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-nix-dump-'));
  await mkdir(join(work, 'src'));
  for (const treeCase of CASES) roots.set(treeCase.name, await buildTree(treeCase, join(work, 'src')));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

/** `nix-store --dump PATH` as a stream, with a private HOME and store (the dump itself reads no store). */
async function* nixDumpStream(path: string): AsyncGenerator<Uint8Array> {
  const home = await mkdtemp(join(tmpdir(), 'fc-nix-home-'));
  try {
    const child = spawn('nix-store', ['--dump', path], {
      env: { ...process.env, HOME: home, NIX_CONFIG: `${NIX_CONFIG}\nstore = ${join(home, 'store')}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const err: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const closed = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
    yield* child.stdout as AsyncIterable<Buffer>;
    const code = await closed;
    if (code !== 0)
      throw new Error(`nix-store --dump ${path} exited ${code}: ${Buffer.concat(err).toString()}`);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** Our dump of PATH, collected; the sink's buffers are reused, so each chunk is copied (not Buffer#slice). */
async function* ourDumpStream(path: string): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await dumpPath(path, (c) => chunks.push(new Uint8Array(c)));
  yield* chunks;
}

/** Passes chunks through, keeping copies while the total stays under KEEP_MAX. */
function keeping(source: AsyncIterable<Uint8Array>): {
  stream: AsyncGenerator<Uint8Array>;
  kept: () => Buffer | undefined;
} {
  const parts: Buffer[] = [];
  let size = 0;
  async function* stream() {
    for await (const chunk of source) {
      size += chunk.length;
      if (size <= KEEP_MAX) parts.push(Buffer.from(chunk));
      yield chunk;
    }
  }
  return { stream: stream(), kept: () => (size <= KEEP_MAX ? Buffer.concat(parts) : undefined) };
}

describe.each(CASES)('tree $name', (treeCase) => {
  it(`a ${live ? 'nix-store --dump' : 'golden-verified'} NAR ingested and rendered again is byte-identical`, async () => {
    const golden = goldens.cases[treeCase.name]?.narDump;
    expect(golden, 'golden').toBeDefined();
    const root = roots.get(treeCase.name) as string;
    const cache = await openCache({ memory: true });
    try {
      const input = keeping(live ? nixDumpStream(root) : ourDumpStream(root));
      const ingested = await ingestNar(input.stream, cache);
      // The input really was Nix's NAR: live, by construction; otherwise by Nix's recorded hash.
      expect({ sha256: toBase16(ingested.narSha256), size: ingested.narSize }).toEqual(golden);

      const hasher = createHasher('sha256');
      const rendered: Buffer[] = [];
      let size = 0;
      for await (const chunk of renderNar(ingested.node, cache)) {
        hasher.update(chunk);
        size += chunk.length;
        if (size <= KEEP_MAX) rendered.push(Buffer.from(chunk));
      }
      expect({ sha256: toBase16(hasher.digest()), size }).toEqual(golden);
      const kept = input.kept();
      if (kept !== undefined) expect(Buffer.concat(rendered).equals(kept)).toBe(true);
    } finally {
      await cache.close();
    }
  });
});
