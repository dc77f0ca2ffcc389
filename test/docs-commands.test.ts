/**
 * The commands the documentation shows are commands the CLI takes: every `fetch-cache …` invocation in a
 * `sh` block of README.md and docs/*.md (a line that starts with it, or it after `;`, `&&` or `$(`; `\`
 * continuations joined) is parsed by the CLI itself (src/cli/run.ts `main`, with `--help` added, which
 * parses every option strictly and then only prints the command's usage), so a renamed or removed command or flag
 * fails here. And every `FETCH_CACHE_*` variable the documentation names is read somewhere in the code.
 * The checker is run first on invocations that must fail.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/run.js';
import { REPO_ROOT } from './helpers/cli.js';

const DOCS = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);

/** `fetch-cache` invocations in the sh blocks of `markdown`, as their argument strings. */
function invocations(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    const text = block[1]!.replace(/\s*\\\n\s*/g, ' ');
    for (const line of text.split('\n')) {
      // Quoted text aside while separators are found, so `&` or `;` in a quoted URL is not one.
      const quoted: string[] = [];
      const bare = line.replace(/'[^']*'|"[^"]*"/g, (q) => `\u0000${quoted.push(q) - 1}\u0000`);
      for (const m of bare.matchAll(/(?:^|;\s*|&&\s*|\$\()fetch-cache\s+([^;&)#]*)/g)) {
        out.push(m[1]!.trim().replace(/\u0000(\d+)\u0000/g, (_, i) => quoted[Number(i)]!));
      }
    }
  }
  return out;
}

/** Shell words: blanks split, single and double quotes group (no expansion: `$X` stays a word). */
function words(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** A stream that keeps what is written to it. */
function capture(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, done) {
      w.text += String(chunk);
      done();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

/**
 * Whether the CLI takes `args`: with `--help` added it exits 0 and prints the usage of one command (an
 * unknown command prints the general usage, which starts with the global options).
 */
async function parses(args: string[]): Promise<boolean> {
  const stdout = capture();
  const code = await main([...args, '--help'], { stdout, stderr: capture(), env: {} });
  return code === 0 && /^usage: fetch-cache [a-z]/.test(stdout.text);
}

/** Text of the files under `dir` (recursively) that code could read variables in. */
function codeUnder(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|mjs|js|sh|py|cc|gyp)$/.test(f) && !f.endsWith('docs-commands.test.ts'))
    .map((f) => join(REPO_ROOT, dir, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => readFileSync(f, 'utf8'));
}

describe('the checker', () => {
  it('finds invocations and fails on an unknown flag or command', async () => {
    const page = [
      '```sh',
      'fetch-cache serve --bind 127.0.0.1:1 \\',
      "  --blob-store 's3://b/p?endpoint=x&region=y' --no-such-flag",
      'x=$(fetch-cache path-info --all) && fetch-cache stats  # a comment',
      'fetch-cache no-such-command',
      '```',
    ].join('\n');
    const found = invocations(page);
    expect(found).toEqual([
      "serve --bind 127.0.0.1:1 --blob-store 's3://b/p?endpoint=x&region=y' --no-such-flag",
      'path-info --all',
      'stats',
      'no-such-command',
    ]);
    expect(words(found[0]!)).toContain('s3://b/p?endpoint=x&region=y');
    expect(await Promise.all(found.map((f) => parses(words(f))))).toEqual([false, true, true, false]);
  });
});

describe('the documentation', () => {
  for (const file of DOCS) {
    const found = invocations(readFileSync(join(REPO_ROOT, file), 'utf8'));
    if (found.length === 0) continue;
    it(`${file}: every fetch-cache command shown parses`, async () => {
      const bad: string[] = [];
      for (const f of found) if (!(await parses(words(f)))) bad.push(f);
      expect(bad).toEqual([]);
    });
  }

  it('names only FETCH_CACHE_* variables that the code reads', () => {
    const code = ['src', 'scripts', 'bin', 'test', 'bench'].flatMap(codeUnder).join('\n');
    const named = new Set<string>();
    for (const file of DOCS) {
      for (const m of readFileSync(join(REPO_ROOT, file), 'utf8').matchAll(/\bFETCH_CACHE_[A-Z_]*[A-Z]\b/g))
        named.add(m[0]);
    }
    expect(named.size).toBeGreaterThan(3);
    expect([...named].filter((v) => !new RegExp(`\\b${v}\\b`).test(code))).toEqual([]);
  });
});
