/**
 * A damaged database (issue 17 items 7 and 8), with the real CLI on a real
 * LevelDB: it is refused with ERR_DB_DAMAGED naming it (never opened as a
 * new empty cache, never an internal error), nothing is deleted meanwhile
 * (gc included), `verify` reports it as damage, and `verify --repair`
 * rebuilds it keeping what can be kept.
 */

import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliResult, cliBuilt, runCli } from '../helpers/cli.js';
import { bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { startServe } from '../helpers/processes.js';

afterAll(cleanTempDirs);

/** Three trees added by three CLI runs: LevelDB has turned the first two runs' logs into tables by then. */
async function rootWithThreePaths(): Promise<{ root: string; paths: string[] }> {
  const root = tempDir();
  const paths: string[] = [];
  for (const seed of [1, 2, 3]) {
    const dir = join(tempDir(), `t${seed}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.bin'), bytes(seed, 300_000));
    writeFileSync(join(dir, 'b.txt'), `tree ${seed}\n`);
    const r = await runCli(['add', dir, '--root', root]);
    expect(r.code, r.stderr).toBe(0);
    paths.push(r.stdout.trim());
  }
  return { root, paths };
}

/** Every file under `dir` with its size (packs, database files). */
function files(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of readdirSync(dir)) out[name] = statSync(join(dir, name)).size;
  return out;
}

function expectRefused(r: CliResult, root: string): void {
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toContain(`ERR_DB_DAMAGED: cache database '${join(root, 'db')}' is damaged`);
  expect(r.stderr).toContain('verify --repair');
}

describe.skipIf(!cliBuilt())('a damaged database', () => {
  it('with db/CURRENT deleted is refused, not recreated empty; nothing is deleted; verify --repair rebuilds it', async () => {
    const { root, paths } = await rootWithThreePaths();
    rmSync(join(root, 'db', 'CURRENT'));
    const packs = files(join(root, 'packs'));
    const tables = Object.keys(files(join(root, 'db'))).filter((n) => /\.(ldb|log)$/.test(n));
    for (const args of [['stats'], ['path-info', '--all'], ['gc'], ['verify', '--all']]) {
      expectRefused(await runCli([...args, '--root', root]), root);
    }
    // gc swept nothing, and LevelDB deleted no table or log.
    expect(files(join(root, 'packs'))).toEqual(packs);
    const left = Object.keys(files(join(root, 'db')));
    for (const t of tables) expect(left).toContain(t);

    const repaired = await runCli(['verify', '--all', '--repair', '--root', root, '--json']);
    expect(repaired.code, repaired.stderr).toBe(0);
    const report = JSON.parse(repaired.stdout) as {
      checked: number;
      damaged: { path: string; repaired?: boolean }[];
    };
    expect(report.checked).toBe(3);
    expect(report.damaged).toEqual([expect.objectContaining({ path: join(root, 'db'), repaired: true })]);
    const listed = await runCli(['path-info', '--all', '--root', root]);
    expect(listed.stdout.trim().split('\n').sort()).toEqual([...paths].sort());
    expect((await runCli(['gc', '--root', root])).code).toBe(0);
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ checked: 3, damaged: [] });
  }, 60_000);

  it('that is missing next to pack files is refused, the packs left alone', async () => {
    const { root } = await rootWithThreePaths();
    const packs = files(join(root, 'packs'));
    rmSync(join(root, 'db'), { recursive: true });
    for (const args of [['stats'], ['gc']]) {
      const r = await runCli([...args, '--root', root]);
      expectRefused(r, root);
      expect(r.stderr).toContain('missing');
    }
    expect(files(join(root, 'packs'))).toEqual(packs);
  }, 60_000);

  it('with a damaged table: every command ends with ERR_DB_DAMAGED, verify reports it, --repair keeps what it can', async () => {
    const { root, paths } = await rootWithThreePaths();
    // The oldest table holds the first tree's records: four bytes flipped at its end (the table's magic).
    const table = Object.keys(files(join(root, 'db')))
      .filter((n) => n.endsWith('.ldb'))
      .sort()[0]!;
    const file = join(root, 'db', table);
    const data = readFileSync(file);
    for (let i = 1; i <= 4; i++) data[data.length - i]! ^= 0xff;
    writeFileSync(file, data);
    const packs = files(join(root, 'packs'));

    for (const args of [['stats'], ['gc'], ['nar', paths[0]!]]) {
      expectRefused(await runCli([...args, '--root', root]), root);
    }
    expect(files(join(root, 'packs'))).toEqual(packs);
    // serve opens it (the damaged table is read lazily) and answers a request that reads the damage
    // with a 500, logging the coded error that names the database.
    const serve = await startServe(root);
    try {
      const hash = paths[0]!.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      expect((await fetch(`${serve.url}/${hash}.narinfo`)).status).toBe(500);
    } finally {
      await serve.stop();
    }
    expect((await serve.exited).stdout).toContain(
      `ERR_DB_DAMAGED: cache database '${join(root, 'db')}' is damaged`,
    );
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/^ERR_INTEGRITY: the database and/m);
    const damage = JSON.parse(v.stdout) as { damaged: { path: string; problems: string[] }[] };
    expect(damage.damaged[0]).toMatchObject({ path: join(root, 'db') });
    expect(damage.damaged[0]!.problems[0]).toMatch(/the database is damaged: Corruption/);

    const repaired = await runCli(['verify', '--all', '--repair', '--root', root, '--json']);
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(JSON.parse(repaired.stdout)).toMatchObject({
      damaged: [{ path: join(root, 'db'), repaired: true }],
    });
    // The records of the damaged table are gone (the first tree's path info among them); the rest is whole.
    const listed = (await runCli(['path-info', '--all', '--root', root])).stdout.trim().split('\n');
    expect(listed.sort()).toEqual(paths.slice(1).sort());
    for (const args of [['stats'], ['gc'], ['nar', paths[2]!]]) {
      const r = await runCli([...args, '--root', root]);
      expect(r.code, r.stderr).toBe(0);
    }
    const again = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ checked: 2, damaged: [] });
  }, 60_000);
});
