/**
 * The documentation stands on its own: every relative link in README.md, docs/*.md and bench/README.md
 * reaches a file of the repository (and, with `#anchor`, a heading of that file, by GitHub's slug rules),
 * and every `docs/<name>.md` that README, docs, source comments, bench scripts or test comments cite
 * exists. The checker is run first on a page with a broken link, a broken anchor and a good one.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

/** GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (m === null) continue;
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Broken relative links of one markdown file, as `target: why`. */
function brokenLinks(file: string, markdown: string, read: (path: string) => string | undefined): string[] {
  const out: string[] = [];
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '');
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    const [path, anchor] = target.split('#', 2) as [string, string | undefined];
    const resolved = path === '' ? file : join(dirname(file), path);
    const content = read(resolved);
    if (content === undefined) {
      out.push(`${target}: no such file`);
      continue;
    }
    if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(content).has(anchor))
      out.push(`${target}: no heading '#${anchor}' in ${relative(REPO_ROOT, resolved)}`);
  }
  return out;
}

const readRepo = (path: string): string | undefined => {
  if (!existsSync(path)) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // a directory: a link to it is fine
  }
};

function filesUnder(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && ext.test(entry.name)) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

const PAGES = [
  join(REPO_ROOT, 'README.md'),
  join(REPO_ROOT, 'bench', 'README.md'),
  ...filesUnder('docs', /\.md$/),
];

describe('documentation cross-references', () => {
  it('the checker finds a missing file and a missing heading', () => {
    const pages: Record<string, string> = {
      '/r/a.md':
        '# A page\n\n## Some `code`, here\n\nSee [b](b.md), [c](c.md), [x](#some-code-here), [y](#nope).\n',
      '/r/b.md': '# B\n',
    };
    const broken = brokenLinks('/r/a.md', pages['/r/a.md']!, (p) => pages[p]);
    expect(broken).toEqual(['c.md: no such file', expect.stringContaining("#nope: no heading '#nope'")]);
  });

  it.each(PAGES.map((p) => [relative(REPO_ROOT, p), p]))('%s: every relative link resolves', (_, page) => {
    expect(brokenLinks(page, readFileSync(page, 'utf8'), readRepo)).toEqual([]);
  });

  it('every docs/*.md the code, scripts, tests and pages cite exists', () => {
    const sources = [
      ...PAGES,
      ...filesUnder('src', /\.(ts|cc|h)$/),
      ...filesUnder('bench', /\.(mjs|ts|py)$/),
      ...filesUnder('scripts', /\.(mjs|ts|sh)$/),
      ...filesUnder('test', /\.ts$/),
    ];
    const missing: string[] = [];
    let cited = 0;
    for (const file of sources) {
      const isTest = file.startsWith(join(REPO_ROOT, 'test'));
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        // In tests only comments cite docs (test data may name made-up docs/*.md files).
        if (isTest && !/^\s*(\*|\/\/|\/\*)/.test(line)) continue;
        for (const m of line.matchAll(/\bdocs\/([a-z0-9-]+\.md)\b/g)) {
          cited++;
          if (!existsSync(join(REPO_ROOT, 'docs', m[1]!)))
            missing.push(`${relative(REPO_ROOT, file)}: docs/${m[1]}`);
        }
      }
    }
    expect(cited).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });
});
