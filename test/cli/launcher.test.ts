/**
 * `bin/fetch-cache`, the launcher: the V8 flags it starts fetching commands with.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, cliBuilt, REPO_ROOT } from '../helpers/cli.js';

const TLS_DIR = join(REPO_ROOT, 'fixtures/tls');

function run(file: string, args: readonly string[], env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', () => resolve());
  });
}

let tmp: string;

beforeAll(() => {
  if (!cliBuilt()) throw new Error('dist/cli-bundle/main.js is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-launcher-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('bin/fetch-cache', () => {
  it('gives fetching commands, and only them, an 8 MiB young generation and --expose-gc, wherever the command word is', async () => {
    // A preload that reports the V8 flags the CLI process was started with.
    const probe = join(tmp, 'exec-argv.cjs');
    const out = join(tmp, 'exec-argv.json');
    writeFileSync(
      probe,
      `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.execArgv));`,
    );
    const flagsOf = async (args: string[]) => {
      rmSync(out, { force: true });
      await run(CLI_BIN, args, { NODE_OPTIONS: `--require ${probe}` });
      return JSON.parse(readFileSync(out, 'utf8')) as string[];
    };
    const root = join(tmp, 'flags-root');
    const young = ['--max-semi-space-size=8', '--expose-gc'];
    expect(await flagsOf(['--root', root, '--offline', 'fetch', 'url', 'https://127.0.0.1:1/x'])).toEqual(
      young,
    );
    expect(await flagsOf(['--quiet', 'lock', '--manifest', join(tmp, 'none.toml')])).toEqual(young);
    expect(await flagsOf(['hash', 'path', TLS_DIR])).toEqual([]);
    // A value of --store-dir that reads like a command is not the command.
    expect(await flagsOf(['--store-dir', 'fetch', 'hash', 'path', TLS_DIR])).toEqual([]);
  });
});
