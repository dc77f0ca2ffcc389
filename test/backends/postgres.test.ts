/**
 * The `postgres://` backend (src/backends/postgres.ts) beyond the
 * conformance suites (conformance.test.ts runs those on it): its URLs and
 * blob store option, the schema check at open and `fetch-cache migrate`,
 * the recorded store dir, gc/verify/stats from the CLI as any machine runs
 * them, a path-info change by another process reaching a watching reader
 * through NOTIFY, and a SIGKILLed process whose locks die with its session.
 * On the real PostgreSQL named by FETCH_CACHE_TEST_POSTGRES
 * (scripts/services/pg-up.sh); without it these are skipped, except in CI,
 * where its absence fails.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { isFetchCacheError } from '../../src/errors.js';
import { MIGRATIONS } from '../../src/storage/postgres.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { postgresStore, type TestPostgresStore } from '../helpers/postgres-store.js';

const skipped = TEST_POSTGRES === undefined && process.env.CI !== 'true';
const reason = skipped ? ': skipped, FETCH_CACHE_TEST_POSTGRES is unset (scripts/services/pg-up.sh)' : '';

it.runIf(process.env.CI === 'true')(
  'has a real PostgreSQL in CI (FETCH_CACHE_TEST_POSTGRES, started by .ci/run)',
  () => {
    expect(TEST_POSTGRES, 'FETCH_CACHE_TEST_POSTGRES is unset: .ci/run must start it').toBeDefined();
  },
);

const dirs: string[] = [];
const stores: TestPostgresStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.remove();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-pg-test-'));
  dirs.push(d);
  return d;
}

async function store(options: { migrated?: boolean } = {}): Promise<TestPostgresStore> {
  const s = await postgresStore(options);
  stores.push(s);
  return s;
}

async function refusal(p: Promise<unknown>, code: string): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(isFetchCacheError(e, code as never), String(e)).toBe(true);
  return (e as Error).message;
}

/** Waits (at most 20 s) until `done()`. */
async function until(done: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(await done()).toBe(true);
}

describe('postgres:// store URLs', () => {
  const blobStore = 'file:///nonexistent/fc-blobs';

  it('need a blob store: ERR_BAD_URL with a hint, before connecting, never showing the password', async () => {
    const message = await refusal(openCache({ store: 'postgres://fc:hunter2@127.0.0.1:1/x' }), 'ERR_BAD_URL');
    expect(message).toContain('--blob-store URL');
    expect(message).toContain('postgres://fc:***@127.0.0.1:1/x');
    expect(message).not.toContain('hunter2');
  });

  it('refuse a blob store no byte store opens, and a blob store for a store that keeps its own bytes', async () => {
    const store = 'postgres://127.0.0.1:1/x';
    expect(await refusal(openCache({ store, blobStore: 'ftp://h/d' }), 'ERR_BAD_URL')).toMatch(
      /no byte store for 'ftp:' \(file:/,
    );
    expect(await refusal(openCache({ store, blobStore: 'file://host/dir' }), 'ERR_BAD_URL')).toMatch(
      /absolute path: file:\/\/\/abs\/dir/,
    );
    expect(await refusal(openCache({ store: 'memory:', blobStore }), 'ERR_BAD_URL')).toMatch(
      /keeps its own chunk bytes/,
    );
  });

  it('a server that cannot be reached is ERR_STORE_BACKEND naming it, without the password', async () => {
    const message = await refusal(
      openCache({ store: 'postgres://fc:hunter2@127.0.0.1:1/x', blobStore: `file://${tempDir()}` }),
      'ERR_STORE_BACKEND',
    );
    expect(message).toContain('127.0.0.1:1');
    expect(message).not.toContain('hunter2');
  });

  it('the CLI says which option is bad (exit 2), and migrate needs a postgres:// store', async () => {
    const bad = await runCli(['--store', 'postgres://127.0.0.1:1/x', '--blob-store', 'ftp://h/d', 'stats']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--blob-store: bad blob store URL');
    const root = await runCli(['--root', tempDir(), '--blob-store', blobStore, 'stats']);
    expect(root.code).toBe(2);
    expect(root.stderr).toContain('a blob store is for a postgres:// store');
    const none = await runCli(['--root', tempDir(), 'migrate']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('migrate needs a postgres:// store');
    const memory = await runCli(['--store', 'memory:', 'migrate']);
    expect(memory.code).toBe(1);
    expect(memory.stderr).toMatch(/^ERR_BAD_URL: .*no schema to migrate/);
  });
});

describe.skipIf(skipped)(`postgres:// stores${reason}`, () => {
  it('an older schema is ERR_STORE_MIGRATE until `fetch-cache migrate`; a newer one is ERR_STORE_VERSION', async () => {
    const s = await store({ migrated: false });
    const args = ['--store', s.store, '--blob-store', s.blobStore];
    const before = await runCli([...args, 'stats']);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/^ERR_STORE_MIGRATE: .*run `fetch-cache migrate`/);

    const migrated = await runCli(['--store', s.store, 'migrate']);
    expect(migrated.stderr).toBe('');
    expect(migrated.stdout).toBe(`migrated the schema from version 0 to ${MIGRATIONS.length}\n`);
    const again = await runCli(['--store', s.store, '--json', 'migrate']);
    expect(JSON.parse(again.stdout)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length });
    const after = await runCli([...args, 'stats']);
    expect(after.stderr).toBe('');
    expect(after.stdout).toContain('paths:         0');

    const sql = postgres(s.store, { max: 1, onnotice: () => {} });
    try {
      await sql`insert into schema_version (version) values (${MIGRATIONS.length + 1})`;
    } finally {
      await sql.end();
    }
    const newer = await runCli([...args, 'stats']);
    expect(newer.code).toBe(1);
    expect(newer.stderr).toMatch(/^ERR_STORE_VERSION: .*newer than this fetch-cache knows/);
    const down = await runCli(['--store', s.store, 'migrate']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^ERR_STORE_VERSION: /);
  });

  it('records the store dir of its first opener and refuses another', async () => {
    const s = await store();
    const first = await openCache({ store: s.store, blobStore: s.blobStore, storeDir: '/gnu/store' });
    expect(first.storeDir).toBe('/gnu/store');
    expect(first.root).toBeUndefined();
    await first.close();
    const plain = await openCache({ store: s.store, blobStore: s.blobStore });
    expect(plain.storeDir).toBe('/gnu/store');
    await plain.close();
    await refusal(
      openCache({ store: s.store, blobStore: s.blobStore, storeDir: '/nix/store' }),
      'ERR_STORE_DIR',
    );
  });

  it('gc, verify and stats run from the CLI on the shared store', async () => {
    const s = await store();
    const args = ['--store', s.store, '--blob-store', s.blobStore];
    const dir = tempDir();
    writeFileSync(join(dir, 'kept.bin'), randomBytes(300_000));
    const kept = await runCli([...args, 'add', join(dir, 'kept.bin')]);
    expect(kept.stderr).toBe('');
    // A blob no path info reaches (an upload whose narinfo never came, say).
    const cache = await openCache({ store: s.store, blobStore: s.blobStore });
    const w = cache.blobs.writer();
    await w.write(randomBytes(300_000));
    await w.close();
    await cache.close();

    const stats = JSON.parse((await runCli([...args, '--json', 'stats'])).stdout) as {
      paths: number;
      unreachable: { bytes: number };
    };
    expect(stats.paths).toBe(1);
    expect(stats.unreachable.bytes).toBeGreaterThanOrEqual(300_000);
    const gc = await runCli([...args, '--json', 'gc']);
    expect(gc.stderr).toBe('');
    const report = JSON.parse(gc.stdout) as { paths: number; deleted: { pathInfos: number; chunks: number } };
    expect(report.deleted.pathInfos).toBe(0);
    expect(report.deleted.chunks).toBeGreaterThan(0);
    expect(report.paths).toBe(1);
    const verify = await runCli([...args, 'verify', '--all']);
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toMatch(/^checked 1 paths .*, 0 damaged\n$/);

    const evict = JSON.parse((await runCli([...args, '--json', 'gc', '--max-size', '0'])).stdout) as {
      paths: number;
      evicted: string[];
    };
    expect(evict.evicted).toEqual([kept.stdout.trim().slice('/nix/store/'.length)]);
    expect(evict.paths).toBe(0);
    const gone = await runCli([...args, 'path-info', kept.stdout.trim()]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^ERR_NOT_FOUND: /);
  });

  it("another process's path-info write reaches a watching reader through NOTIFY", async () => {
    const s = await store();
    const cache = await openCache({ store: s.store, blobStore: s.blobStore });
    try {
      const changes = cache.coordination.changes;
      expect(changes.watch()).toBe(true);
      const s0 = changes.current();
      const dir = tempDir();
      writeFileSync(join(dir, 'f'), 'from another process\n');
      const added = await runCli(['--store', s.store, '--blob-store', s.blobStore, 'add', join(dir, 'f')]);
      expect(added.stderr).toBe('');
      await until(() => changes.current() !== s0);
      changes.unwatch();
    } finally {
      await cache.close();
    }
  });

  it('a SIGKILLed process holds nothing: its ingest and gc-turn locks die with its session', async () => {
    const s = await store();
    const script = join(tempDir(), 'holder.mjs');
    writeFileSync(
      script,
      `import { openCache } from ${JSON.stringify(join(REPO_ROOT, 'dist/cache.js'))};
       const c = await openCache({ store: ${JSON.stringify(s.store)}, blobStore: ${JSON.stringify(s.blobStore)} });
       await c.coordination.gcTurn();
       void c.coordination.ingest(() => new Promise(() => { console.log('inside'); }));
       setInterval(() => {}, 1000);`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('inside')) resolve();
      });
      void exited.then(() => reject(new Error(`holder exited: ${stderr}`)));
    });
    const cache = await openCache({ store: s.store, blobStore: s.blobStore });
    try {
      const c = cache.coordination;
      await refusal(c.exclusive({ timeoutMs: 300 }), 'ERR_STORE_LOCKED');
      await refusal(c.gcTurn({ timeoutMs: 300 }), 'ERR_STORE_LOCKED');
      child.kill('SIGKILL');
      await exited;
      // PostgreSQL ends the session when the connection drops, and its locks with it.
      const turn = await c.gcTurn({ timeoutMs: 20_000 });
      const end = await c.exclusive({ timeoutMs: 20_000 });
      await end();
      await turn();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await cache.close();
    }
  });
});
