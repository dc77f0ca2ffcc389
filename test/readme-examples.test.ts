/**
 * The README's two library examples, run exactly as written: the code blocks marked
 * `<!-- example: resolve-pin -->` and `<!-- example: synchronize -->` are extracted from README.md,
 * saved as `.mjs` files in an empty project whose `node_modules/fetch-cache` is this package (the built
 * dist/, through its `exports`), and run with node. The project's pins.toml points the pins at servers on
 * 127.0.0.1 (test/lock/world.ts: `[github]` hosts, a tarball, a file); what the examples print must be
 * what Nix 2.8 computed for the same inputs (fixtures/nix-goldens/lock.json), and the cache they open is
 * the custom root they name.
 */

import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, cliBuilt, REPO_ROOT, runCommand } from './helpers/cli.js';
import { git } from './helpers/git-repos.js';
import { type PinWorld, startPinWorld } from './lock/world.js';

const golden = (
  JSON.parse(readFileSync(new URL('../fixtures/nix-goldens/lock.json', import.meta.url), 'utf8')) as {
    cases: Record<string, { narHash?: string; hash?: string; storePath: string }>;
  }
).cases;

/** The code block right after `<!-- example: NAME -->` in the README. */
function readmeExample(readme: string, name: string): string {
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`(?:js|ts)\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(readme);
  if (m === null) throw new Error(`README.md has no example '${name}'`);
  return `${m[1]}\n`;
}

function node(file: string, cwd: string): Promise<CliResult> {
  return runCommand(process.execPath, [file], { cwd });
}

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
let w: PinWorld;
let project: string;

beforeAll(async () => {
  w = await startPinWorld();
  project = mkdtempSync(join(w.tmp, 'project-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(REPO_ROOT, join(project, 'node_modules', 'fetch-cache'), 'dir');
  writeFileSync(
    join(project, 'pins.toml'),
    `[github]
base = "${w.http.base}"
git-base = "${w.git.baseUrl}"

[pins.nixpkgs]
type = "github"
owner = "acme"
repo = "widget"
ref = "main"

[pins.pkg]
type = "tarball"
url = "${w.http.url('/pkg.tar.gz')}"

[pins.hello]
type = "url"
url = "${w.http.url('/hello.txt')}"
`,
  );
});
afterAll(async () => {
  await w?.close();
});

describe.runIf(cliBuilt())('the README examples', () => {
  it('resolve-pin: prints the store path, narHash, rev and URL Nix gives; the cache is at the custom root', async () => {
    writeFileSync(join(project, 'resolve-pin.mjs'), readmeExample(readme, 'resolve-pin'));
    const r = await node('resolve-pin.mjs', project);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rev = git(w.widget, ['rev-parse', 'main']);
    expect(r.stdout).toBe(
      `store path: ${golden.widget!.storePath}\nnarHash: ${golden.widget!.narHash}\nrev: ${rev}\nurl: ${w.http.base}/acme/widget/archive/${rev}.tar.gz\n`,
    );
    expect(existsSync(join(project, '.fetch-cache', 'layout.json'))).toBe(true);
  });

  it('synchronize: writes pins.lock and prints each entry; a second run keeps everything', async () => {
    writeFileSync(join(project, 'synchronize.mjs'), readmeExample(readme, 'synchronize'));
    const r = await node('synchronize.mjs', project);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'added 3, updated 0, unchanged 0, removed 0',
        `hello ${golden.hello!.storePath} ${golden.hello!.hash}`,
        `nixpkgs ${golden.widget!.storePath} ${golden.widget!.narHash}`,
        `pkg ${golden.pkg!.storePath} ${golden.pkg!.narHash}`,
        '',
      ].join('\n'),
    );
    const lock = JSON.parse(readFileSync(join(project, 'pins.lock'), 'utf8')) as {
      pins: Record<string, unknown>;
    };
    expect(Object.keys(lock.pins)).toEqual(['hello', 'nixpkgs', 'pkg']);
    const again = await node('synchronize.mjs', project);
    expect(again.stdout.split('\n')[0]).toBe('added 0, updated 0, unchanged 3, removed 0');
  });
});
