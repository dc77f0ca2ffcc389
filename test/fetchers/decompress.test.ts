/**
 * decompress() checks what each format carries, judged against the real tools: inputs are made by
 * `gzip`, `bzip2`, `xz` and `zstd`, damaged one byte at a time or cut short, and wherever `TOOL -t`
 * refuses a file we must refuse it with ERR_BAD_ARCHIVE (and where it accepts one, give what `TOOL -dc`
 * gives, or refuse it). Then the same damage through the three users of the decoders: `fetch tarball` (where Nix
 * refuses the same file), `fetch nar` and a `serve` upload, none of which may store anything. Finally
 * XXH64, which checks zstd frames, against the checksums `zstd` writes.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { decompress } from '../../src/fetchers/decompress.js';
import { Xxh64, xxh64 } from '../../src/fetchers/xxh64.js';
import { XXH64_WASM_BASE64 } from '../../src/fetchers/xxh64-wasm.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar } from '../../src/nix/nar/encoder.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { chunked, tarArchive, tarMember } from '../helpers/archives.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { nixAvailable, runNix } from '../helpers/nix.js';
import { basicAuth, rawRequest, startHarness, TOKEN } from '../server/harness.js';

const TOOLS = {
  gzip: ['gzip', '-c'],
  bzip2: ['bzip2', '-c'],
  xz: ['xz', '-c'],
  zstd: ['zstd', '-q', '-c'],
} as const;
type Tool = keyof typeof TOOLS;

const compress = (tool: Tool, data: Uint8Array): Buffer =>
  execFileSync(TOOLS[tool][0], TOOLS[tool].slice(1), { input: data, maxBuffer: 1 << 30 });
/** What `TOOL -dc` makes of `file`, or undefined when it (like `TOOL -t`) refuses it. */
function toolDecodes(tool: Tool, file: Uint8Array): Buffer | undefined {
  const r = spawnSync(TOOLS[tool][0], ['-d', '-c', ...(tool === 'zstd' ? ['-q'] : [])], {
    input: file,
    maxBuffer: 1 << 30,
  });
  return r.status === 0 ? r.stdout : undefined;
}

async function ours(file: Uint8Array, chunk = 4099): Promise<Buffer | { code: string; message: string }> {
  const out: Uint8Array[] = [];
  try {
    for await (const c of decompress(chunked(file, chunk))) out.push(c);
    return Buffer.concat(out);
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message };
  }
}

/** Same bytes (toEqual on large buffers is slow). */
const same = (a: unknown, b: Uint8Array | undefined): boolean =>
  Buffer.isBuffer(a) && b !== undefined && a.equals(b);

function flipped(file: Uint8Array, at: number): Buffer {
  const copy = Buffer.from(file);
  const i = at < 0 ? copy.length + at : at;
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}

// Incompressible and compressible halves, so raw and compressed blocks both occur.
const DATA = Buffer.concat([randomBytes(150_000), Buffer.from('a line of text\n'.repeat(8_000))]);

describe('every decoder checks what its format carries, as `TOOL -t` does', () => {
  for (const tool of Object.keys(TOOLS) as Tool[]) {
    it(`${tool}: one flipped byte anywhere is refused where ${tool} -t refuses it`, async () => {
      const file = compress(tool, DATA);
      expect(same(await ours(file), DATA)).toBe(true);
      const at = [-1, -2, -3, -4, -5, -6, -8, -9, -12, 20, 100, 1000, file.length >> 1, file.length - 5000];
      let refused = 0;
      for (const i of at) {
        const bad = flipped(file, i);
        const theirs = toolDecodes(tool, bad);
        const mine = await ours(bad);
        if (theirs === undefined) {
          refused++;
          expect(mine, `${tool}, byte ${i} flipped`).toMatchObject({ code: 'ERR_BAD_ARCHIVE' });
        } else if (Buffer.isBuffer(mine)) {
          // Where the tool accepts it (the damage hit nothing that matters), we give the same bytes or refuse
          // (fzstd is stricter than libzstd about unused bits), never other bytes.
          expect(same(mine, theirs), `${tool}, byte ${i} flipped`).toBe(true);
        }
      }
      expect(refused).toBeGreaterThan(at.length / 2);
    });

    it(`${tool}: a file cut short is ERR_BAD_ARCHIVE with a message that says so`, async () => {
      const file = compress(tool, DATA);
      for (const keep of [file.length - 1, file.length - 4, file.length - 11, file.length >> 1, 12]) {
        const cut = file.subarray(0, keep);
        expect(toolDecodes(tool, cut)).toBeUndefined();
        const mine = await ours(cut);
        expect(mine, `${tool} cut to ${keep} bytes`).toMatchObject({ code: 'ERR_BAD_ARCHIVE' });
        const { message } = mine as { message: string };
        expect(message).toMatch(/truncated|unexpected end|ended|corrupt/i);
        expect(message).not.toMatch(/undefined|Cannot read/);
      }
    });
  }

  it('zstd: a frame checksum over many frames and skippable frames; the content size is checked', async () => {
    const a = compress('zstd', DATA.subarray(0, 100_000));
    const b = compress('zstd', DATA.subarray(100_000));
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const file = Buffer.concat([a, skippable, b]);
    expect(same(toolDecodes('zstd', file), DATA)).toBe(true);
    expect(same(await ours(file, 777), DATA)).toBe(true);
    // The second frame's checksum, then its declared size (the byte after the magic and descriptor).
    for (const bad of [flipped(file, -2), flipped(file, a.length + skippable.length + 6)]) {
      expect(toolDecodes('zstd', bad)).toBeUndefined();
      expect(await ours(bad)).toMatchObject({ code: 'ERR_BAD_ARCHIVE' });
    }
  });
});

describe('XXH64 (the zstd content checksum)', () => {
  it('is the hash whose low 32 bits zstd writes, for every length and split', () => {
    expect(xxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    for (const length of [1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 1000, 65_536 + 17, 300_001]) {
      const data = randomBytes(length);
      const z = execFileSync('zstd', ['-q', '-c', '--check'], { input: data });
      const want = z.readUInt32LE(z.length - 4);
      expect(Number(xxh64(data) & 0xffffffffn), `length ${length}`).toBe(want);
      const h = new Xxh64();
      for (let i = 0; i < data.length; i += 13) h.update(data.subarray(i, i + 13));
      expect(Number(h.digest() & 0xffffffffn), `length ${length}, 13-byte updates`).toBe(want);
    }
  });

  it('the checked-in wasm module is what scripts/make-xxh64-wasm.mjs generates', async () => {
    const script = new URL('../../scripts/make-xxh64-wasm.mjs', import.meta.url).href;
    const generator = (await import(script)) as { xxh64WasmBytes(): Uint8Array; xxh64WasmSource(): string };
    const checkedIn = readFileSync(new URL('../../src/fetchers/xxh64-wasm.ts', import.meta.url), 'utf8');
    expect(checkedIn).toBe(generator.xxh64WasmSource());
    expect(Buffer.from(XXH64_WASM_BASE64, 'base64').equals(generator.xxh64WasmBytes())).toBe(true);
  });

  const built = new URL('../../dist/fetchers/xxh64.js', import.meta.url);
  it.runIf(existsSync(built))(
    'without WebAssembly (node --jitless) the BigInt loop gives the same digest',
    () => {
      const data = randomBytes(1000).toString('hex');
      const script = `import('${built.href}').then((m) => { if (typeof WebAssembly !== 'undefined') throw new Error('wasm'); console.log(m.xxh64(Buffer.from('${data}', 'hex')).toString(16)); })`;
      const r = spawnSync(process.execPath, ['--jitless', '-e', script], { encoding: 'utf8' });
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.stdout.trim()).toBe(xxh64(Buffer.from(data, 'hex')).toString(16));
    },
  );
});

describe('corrupt compression through the fetchers and uploads', () => {
  const TREE = tarArchive([
    tarMember({ name: 'src/a.txt', content: 'a\n' }),
    tarMember({ name: 'src/b', content: 'b' }),
  ]);
  const NAR = encodeNar({ type: 'regular', contents: DATA.subarray(0, 100_000) });
  const badTarZst = flipped(compress('zstd', TREE), -1);
  const badNarZst = flipped(compress('zstd', NAR), -1);
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startServer({ '/x.tar.zst': { body: badTarZst }, '/x.nar.zst': { body: badNarZst } });
    dir = await mkdtemp(join(tmpdir(), 'fc-decompress-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function paths(cache: Cache): Promise<number> {
    let n = 0;
    for await (const _ of cache.pathInfos.list()) n++;
    return n;
  }

  it('fetch tarball and fetch nar refuse a zstd file whose checksum does not match, storing nothing', async () => {
    const cache = await openCache({ memory: true });
    const fetcher = new Fetcher(cache, { http: { attempts: 1 } });
    const tarball = await fetcher.fetch({ type: 'tarball', url: server.url('/x.tar.zst') }).catch((e) => e);
    expect(tarball.code).toBe('ERR_BAD_ARCHIVE');
    expect(tarball.message).toContain('checksum');
    const nar = await fetcher
      .fetch({
        type: 'nar',
        url: server.url('/x.nar.zst'),
        hash: `sha256-${Buffer.from(sha256(NAR)).toString('base64')}`,
      })
      .catch((e) => e);
    expect(nar.code).toBe('ERR_BAD_ARCHIVE');
    expect(await paths(cache)).toBe(0);
    await cache.close();
  });

  it.runIf(nixAvailable())('Nix refuses the same .tar.zst (nix-prefetch-url --unpack)', async () => {
    const file = join(dir, 'x.tar.zst');
    await writeFile(file, badTarZst);
    const store = join(dir, 'store');
    const r = await runNix(['--store', store, '--unpack', `file://${file}`], {
      bin: 'nix-prefetch-url' as 'nix',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("doesn't match checksum");
  });

  it('an upload of a .nar.zst whose checksum does not match is refused (400), leaving no trace', async () => {
    const h = await startHarness();
    try {
      const r = await rawRequest(
        h.port,
        'PUT',
        `/nar/${encodeNix32(sha256(badNarZst))}.nar.zst`,
        { Authorization: basicAuth('nix', TOKEN) },
        badNarZst,
      );
      expect(r.status).toBe(400);
      expect(r.body.toString()).toContain('checksum');
      expect(await h.services.uploads.count()).toBe(0);
      expect(await paths(h.cache)).toBe(0);
    } finally {
      await h.close();
    }
  });
});
