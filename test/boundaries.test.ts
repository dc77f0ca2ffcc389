/**
 * The storage seam, checked on the source (docs/architecture.md): the
 * layers above the services import service interfaces only — no key-value
 * layer (src/storage/), no backend (src/backends/), no backend class
 * (`*\/leveldb.ts`, packs, the key-value maintenance, the local or memory
 * coordination), no level package — and fetchers/ and server/ import no
 * ops/ module. Only the composition root (src/cache.ts and src/backends/)
 * constructs a backend. Each rule is also run on a made-up violation, so
 * the checks are known to catch one.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SRC = join(REPO, 'src');

/** Layers above the services, and what each may not import (repo-relative module paths or packages). */
const ABOVE_THE_SEAM = [
  'src/fetchers/',
  'src/server/',
  'src/lock/',
  'src/ops/',
  'src/nar-render/',
  'src/cli/',
];

const BACKEND_MODULES = [
  /^src\/storage\//,
  /^src\/backends\/(?!registry\.ts$)/,
  /\/leveldb\.ts$/,
  /^src\/blob\/(packs|chunk-store|s3-packs|near)\.ts$/,
  /^src\/maintenance\/kv\.ts$/,
  /^src\/coordination\/(local|memory|change-stamp)\.ts$/,
  /^(classic-level|memory-level|abstract-level|many-level)(\/|$)/,
];

/** The registry only parses URLs for the CLI; the rest of src/backends/ is off limits above the seam. */
const REGISTRY_ALLOWED = ['src/cli/'];

const NOT_FROM: Record<string, RegExp[]> = {
  'src/fetchers/': [/^src\/ops\//],
  'src/server/': [/^src\/ops\//],
};

/** Constructing a backend: only in the composition root. */
const CONSTRUCTS =
  /\bnew\s+(LevelBlobService|LevelDirectoryService|LevelPathInfoService|PackChunkStore|S3PackChunkStore|NearChunkStore|KvMaintenance|KvNarSums|KvFetchRecords|LocalCoordination|MemoryCoordination|ClassicLevel|MemoryLevel)\b|(?<!function\s)\b(openSharedDb|openLevelDb|openMemoryKV|composeKv|openLevelStore|openMemoryStore|openStore|openChunkStore)\s*\(/g;
const COMPOSITION_ROOT = [/^src\/cache\.ts$/, /^src\/backends\//];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Every module `text` imports (static, dynamic, type-only), as repo-relative `.ts` paths or package names. */
function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g)) {
    const spec = m[1]!;
    if (spec.startsWith('.')) {
      out.push(relative(REPO, resolve(dirname(file), spec)).replace(/\.js$/, '.ts'));
    } else if (!spec.startsWith('node:')) out.push(spec);
  }
  return out;
}

/** The rule violations of one file (repo-relative `path`). */
function violations(path: string, text: string): string[] {
  const found: string[] = [];
  const layer = ABOVE_THE_SEAM.find((l) => path.startsWith(l));
  if (layer !== undefined) {
    for (const mod of importsOf(join(REPO, path), text)) {
      const registry = mod === 'src/backends/registry.ts' && !REGISTRY_ALLOWED.includes(layer);
      if (BACKEND_MODULES.some((r) => r.test(mod)) || registry) found.push(`${path} imports ${mod}`);
      if ((NOT_FROM[layer] ?? []).some((r) => r.test(mod))) found.push(`${path} imports ${mod}`);
    }
  }
  if (!COMPOSITION_ROOT.some((r) => r.test(path))) {
    const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const m of code.matchAll(CONSTRUCTS)) found.push(`${path} constructs a backend: ${m[0].trim()}`);
  }
  return found;
}

describe('the storage seam', () => {
  it('no layer above the services imports storage, a backend or ops/ (fetchers, server); only the composition root builds backends', () => {
    const found: string[] = [];
    for (const file of sources(SRC))
      found.push(...violations(relative(REPO, file), readFileSync(file, 'utf8')));
    expect(found).toEqual([]);
  });

  it('the checks catch a violation of each rule', () => {
    expect(violations('src/server/x.ts', "import type { KV } from '../storage/kv.js';")).toHaveLength(1);
    expect(
      violations('src/ops/x.ts', "const { ClassicLevel } = await import('classic-level');"),
    ).toHaveLength(1);
    expect(
      violations('src/lock/x.ts', "import { LevelPathInfoService } from '../pathinfo/leveldb.js';"),
    ).toHaveLength(1);
    expect(violations('src/fetchers/x.ts', "import { gc } from '../ops/gc.js';")).toHaveLength(1);
    expect(
      violations('src/server/x.ts', "import { openStore } from '../backends/registry.js';"),
    ).toHaveLength(1);
    expect(violations('src/cli/x.ts', "import { parseStoreUrl } from '../backends/registry.js';")).toEqual(
      [],
    );
    expect(violations('src/ops/x.ts', "import { gc } from './gc.js';")).toEqual([]);
    expect(violations('src/fetchers/x.ts', 'const s = new PackChunkStore(index, dir);')).toHaveLength(1);
    expect(violations('src/blob/x.ts', 'const db = await openSharedDb(root, options);')).toHaveLength(1);
    expect(violations('src/backends/x.ts', 'const s = new LevelBlobService(db);')).toEqual([]);
    expect(violations('src/storage/x.ts', 'export async function openSharedDb(root) {}')).toEqual([]);
  });
});
