/**
 * `.gitmodules` (git-config syntax): the `path` and `url` of every
 * `[submodule "<name>"]` section, which is all the fetcher needs to find the
 * repository behind a gitlink. Values may be double-quoted with `\"`, `\\`,
 * `\n`, `\t` escapes; `#` and `;` start comments outside quotes; keys are
 * case-insensitive; the last value of a key wins.
 */

export interface Submodule {
  readonly name: string;
  readonly path: string;
  readonly url: string;
}

function parseValue(raw: string): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '"') quoted = !quoted;
    else if (c === '\\') {
      const n = raw[++i] ?? '';
      out += n === 'n' ? '\n' : n === 't' ? '\t' : n;
    } else if (!quoted && (c === '#' || c === ';')) break;
    else out += c;
  }
  return out.trim();
}

/** The submodules declared in `.gitmodules`, by path; sections missing `path` or `url` are left out. */
export function parseGitmodules(text: string): Map<string, Submodule> {
  const sections = new Map<string, { path?: string; url?: string }>();
  let current: { path?: string; url?: string } | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]$/.exec(line);
    if (header) {
      if (header[1]!.toLowerCase() === 'submodule' && header[2] !== undefined) {
        const name = header[2].replace(/\\(.)/g, '$1');
        current = sections.get(name) ?? {};
        sections.set(name, current);
      } else current = undefined;
      continue;
    }
    if (current === undefined) continue;
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=(.*))?$/.exec(line);
    if (!kv) continue;
    const key = kv[1]!.toLowerCase();
    const value = parseValue(kv[2] ?? '');
    if (key === 'path') current.path = value;
    else if (key === 'url') current.url = value;
  }
  const byPath = new Map<string, Submodule>();
  for (const [name, s] of sections) {
    if (s.path !== undefined && s.url !== undefined) byPath.set(s.path, { name, path: s.path, url: s.url });
  }
  return byPath;
}
