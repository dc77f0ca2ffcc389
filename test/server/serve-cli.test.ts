/**
 * `fetch-cache serve` as the CLI runs it: a signing key or upload token file
 * its group or others can read gets a `warning:` line on stderr (never on
 * stdout, which is the JSON log), a private one none, and the server still
 * starts with them. SIGTERM is delivered by calling the listeners the
 * command installed, so the test process itself gets no signal.
 */

import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/cli/command.js';
import { serveCommand } from '../../src/cli/commands/serve.js';
import { formatSecretKey, generateKeyPair } from '../../src/nix/signing.js';

let tmp: string | undefined;
afterEach(async () => {
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  tmp = undefined;
});

async function secretFile(dir: string, name: string, text: string, mode: number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

function collect(stream: PassThrough): () => string {
  let text = '';
  stream.on('data', (c: Buffer) => {
    text += c.toString('utf8');
  });
  return () => text;
}

describe('serve CLI', () => {
  it('warns on stderr about a 0644 signing key and a 0640 token file, not about a 0600 key', async () => {
    tmp = await mkdtemp(join(tmpdir(), 'fc-serve-cli-'));
    const shared = await secretFile(
      tmp,
      'shared.key',
      formatSecretKey(generateKeyPair('shared-1').secret),
      0o644,
    );
    const privateKey = await secretFile(
      tmp,
      'private.key',
      formatSecretKey(generateKeyPair('private-1').secret),
      0o600,
    );
    const token = await secretFile(tmp, 'token', 'sekrit-token\n', 0o640);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out = collect(stdout);
    const err = collect(stderr);
    const ctx: CommandContext = {
      globals: {
        store: undefined,
        blobStore: undefined,
        root: join(tmp, 'root'),
        storeDir: '/nix/store',
        json: false,
        offline: false,
        quiet: false,
      },
      args: [],
      values: { bind: '127.0.0.1:0', 'sign-key': [shared, privateKey], 'upload-token-file': token },
      stdout,
      stderr,
      env: {},
    };
    const before = new Set(process.listeners('SIGTERM'));
    const running = serveCommand.run(ctx);
    for (let i = 0; i < 500 && !out().includes('"msg":"listening"'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(out()).toContain('"msg":"listening"');
    for (const listener of process.listeners('SIGTERM')) {
      if (!before.has(listener)) (listener as (signal: NodeJS.Signals) => void)('SIGTERM');
    }
    await running;

    const warnings = err().trim().split('\n');
    expect(warnings).toEqual([
      `warning: signing key file '${shared}' has mode 644: its group and everyone can access it; run chmod 600 '${shared}'`,
      `warning: upload token file '${token}' has mode 640: its group can access it; run chmod 600 '${token}'`,
    ]);
    expect(err()).not.toContain(privateKey);
    expect(err()).not.toContain('sekrit');
    // stdout stays pure JSON lines.
    for (const line of out().trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
    expect(out()).not.toContain('warning');
  });
});
