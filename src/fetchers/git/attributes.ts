/**
 * `.gitattributes` for `export-ignore`: which paths `git archive` (and Nix's
 * fetchGit with `exportIgnore`) leaves out of a tree. Only the attributes
 * files inside the commit's tree count (as with `git archive <rev>` and
 * libgit2's `GIT_ATTR_CHECK_INCLUDE_COMMIT`); `$GIT_DIR/info/attributes` and
 * system/global files are not read.
 *
 * Format (gitattributes(5)): one `pattern attr…` per line; `#` comments;
 * a pattern may be C-quoted; `export-ignore` sets, `-export-ignore` unsets,
 * `!export-ignore` returns it to unspecified; `export-ignore=x` is not "set".
 * Patterns follow gitignore rules relative to the file's directory: without a
 * `/` they match the base name at any depth, with one they are anchored;
 * `**` spans directories; a trailing `/` matches directories only; negated
 * patterns are invalid and skipped; `[attr]` macro lines are skipped. The
 * last matching line wins, and deeper files override shallower ones.
 */

type Value = 'set' | 'unset' | 'unspecified';

interface Rule {
  readonly regex: RegExp;
  readonly basenameOnly: boolean;
  readonly mustBeDir: boolean;
  readonly value: Value;
}

/** The export-ignore rules of one `.gitattributes`, with the directory it sits in. */
export interface AttributeRules {
  /** The directory, as a latin1 string of its path bytes ('' for the root). */
  readonly base: string;
  readonly rules: readonly Rule[];
}

/** Parses a `.gitattributes` blob found in directory `base` (latin1 path bytes). */
export function parseAttributes(base: string, data: Uint8Array): AttributeRules {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  const rules: Rule[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '').replace(/^[ \t]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('[attr]')) continue;
    const split = splitPattern(line);
    if (split === undefined) continue;
    let { pattern } = split;
    if (pattern.startsWith('!') || pattern === '') continue;
    let value: Value | undefined;
    for (const attr of split.rest.split(/[ \t]+/)) {
      if (attr === 'export-ignore') value = 'set';
      else if (attr === '-export-ignore') value = 'unset';
      else if (attr === '!export-ignore') value = 'unspecified';
      else if (attr.startsWith('export-ignore=')) value = 'unset';
    }
    if (value === undefined) continue;
    const mustBeDir = pattern.endsWith('/');
    if (mustBeDir) pattern = pattern.replace(/\/+$/, '');
    const basenameOnly = !pattern.includes('/');
    if (pattern.startsWith('/')) pattern = pattern.slice(1);
    rules.push({ regex: globToRegex(pattern), basenameOnly, mustBeDir, value });
  }
  return { base, rules };
}

/** Splits a line into its (possibly C-quoted) pattern and the attribute list. */
function splitPattern(line: string): { pattern: string; rest: string } | undefined {
  if (!line.startsWith('"')) {
    const m = /^(\S+)(.*)$/.exec(line);
    return m ? { pattern: m[1]!, rest: m[2]!.trim() } : undefined;
  }
  let out = '';
  for (let i = 1; i < line.length; i++) {
    const c = line[i]!;
    if (c === '"') return { pattern: out, rest: line.slice(i + 1).trim() };
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = line[++i] ?? '';
    const simple: Record<string, string> = {
      n: '\n',
      t: '\t',
      '"': '"',
      '\\': '\\',
      a: '\x07',
      b: '\b',
      f: '\f',
      r: '\r',
      v: '\v',
    };
    if (simple[n] !== undefined) out += simple[n];
    else if (/[0-7]/.test(n)) {
      const oct = line.slice(i, i + 3);
      out += String.fromCharCode(Number.parseInt(oct, 8) & 0xff);
      i += 2;
    } else return undefined;
  }
  return undefined;
}

/** A wildmatch (WM_PATHNAME) pattern as an anchored regular expression over latin1 strings. */
export function globToRegex(pattern: string): RegExp {
  let re = '';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      const atStart = i === 0 || pattern[i - 1] === '/';
      const j = i + 2;
      if (atStart && (j === pattern.length || pattern[j] === '/')) {
        if (j === pattern.length) {
          re += '.*';
          i = j;
        } else {
          re += '(?:.*/)?';
          i = j + 1;
        }
        continue;
      }
      re += '[^/]*';
      i = j;
      continue;
    }
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) {
      re += escapeRegex(pattern[++i]!);
    } else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, close);
        let negate = false;
        if (body.startsWith('!') || body.startsWith('^')) {
          negate = true;
          body = body.slice(1);
        }
        re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
        i = close;
      }
    } else re += escapeRegex(c);
    i++;
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRegex(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Whether `path` (latin1 path bytes from the root) is export-ignored under the
 * attribute files in `stack` (root first, each an ancestor of `path`).
 */
export function isExportIgnored(stack: readonly AttributeRules[], path: string, isDir: boolean): boolean {
  for (let s = stack.length - 1; s >= 0; s--) {
    const { base, rules } = stack[s]!;
    const rel = base === '' ? path : path.slice(base.length + 1);
    const slash = rel.lastIndexOf('/');
    const basename = slash < 0 ? rel : rel.slice(slash + 1);
    for (let r = rules.length - 1; r >= 0; r--) {
      const rule = rules[r]!;
      if (rule.mustBeDir && !isDir) continue;
      if (!rule.regex.test(rule.basenameOnly ? basename : rel)) continue;
      // The first match from the most specific end decides, `!export-ignore` included.
      return rule.value === 'set';
    }
  }
  return false;
}
