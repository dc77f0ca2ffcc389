/**
 * Why a flake `git` input's recorded narHash can differ from ours when the
 * lock was written by Nix before 2.20: that Nix unpacked `git archive`, which
 * applies the commit's `.gitattributes` — `export-ignore` leaves paths out,
 * `export-subst` expands `$Format:…$` placeholders — while Nix ≥ 2.20 reads
 * the commit's tree as it is, for flake inputs without export-ignore, and so
 * do we (docs/differences-from-nix.md). Given a git input that differs, this
 * reads the `.gitattributes` files of the tree we fetched and says which of
 * those attributes the commit uses; for export-ignore it also fetches the tree
 * with export-ignore applied, and says when that is the recorded hash.
 * export-subst needs `git log` formatting of the commit, which we do not
 * reproduce, so such a hash is explained but not matched.
 */

import type { Node } from '../castore/nodes.js';
import type { Fetcher } from '../fetchers/base.js';
import type { GitSpec } from '../fetchers/types.js';
import type { RenderServices } from '../nar-render/render.js';
import { toSRI } from '../nix/hash.js';

const ATTRIBUTES = '.gitattributes';
/** Tokens of `git archive` that change content, as they appear set in an attributes line. */
const ARCHIVE_ATTRIBUTES = ['export-ignore', 'export-subst'] as const;
type ArchiveAttribute = (typeof ARCHIVE_ATTRIBUTES)[number];

/** The `.gitattributes` files of a tree (path → text), found by walking its directories. */
async function attributeFiles(node: Node, store: RenderServices): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const queue: [string, Node][] = [['', node]];
  while (queue.length > 0) {
    const [path, n] = queue.pop()!;
    if (n.type !== 'directory') continue;
    const dir = await store.directories.get(n.digest);
    if (dir === undefined) continue;
    for (const e of dir) {
      const name = Buffer.from(e.name).toString('utf8');
      const child = path === '' ? name : `${path}/${name}`;
      if (e.node.type === 'directory') queue.push([child, e.node]);
      else if (e.node.type === 'file' && name === ATTRIBUTES && e.node.size <= 1 << 20) {
        const chunks = await store.blobs.read(e.node.digest);
        if (chunks === undefined) continue;
        const parts: Uint8Array[] = [];
        for await (const c of chunks) parts.push(c);
        out.set(child, Buffer.concat(parts).toString('latin1'));
      }
    }
  }
  return out;
}

/** Which archive attributes each attributes file sets (`attr`, not `-attr` / `!attr` / `attr=…`). */
export function archiveAttributes(files: ReadonlyMap<string, string>): Map<ArchiveAttribute, string[]> {
  const found = new Map<ArchiveAttribute, string[]>();
  for (const [file, text] of files) {
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith('[attr]')) continue;
      const tokens = line.split(/[ \t]+/).slice(1);
      for (const attr of ARCHIVE_ATTRIBUTES) {
        if (!tokens.includes(attr)) continue;
        const list = found.get(attr) ?? [];
        if (!list.includes(file)) list.push(file);
        found.set(attr, list);
      }
    }
  }
  return found;
}

/**
 * A one-line reason for a git input whose narHash (`expected`) is not the one we computed for `node`, or
 * undefined when its `.gitattributes` do not explain it.
 */
export async function explainGitMismatch(
  spec: GitSpec,
  node: Node,
  expected: string,
  fetcher: Fetcher,
): Promise<string | undefined> {
  const attrs = archiveAttributes(await attributeFiles(node, fetcher.cache));
  if (attrs.size === 0) return undefined;
  const uses = [...attrs].map(([attr, files]) => `${attr} (${files.join(', ')})`).join(' and ');
  const why = `this commit's .gitattributes use ${uses}, which Nix before 2.20 applied through \`git archive\` when it wrote this narHash; Nix 2.20 and later and fetch-cache read the commit's tree as it is`;
  if (attrs.has('export-ignore') && spec.exportIgnore !== true) {
    const ignored = await fetcher.fetch({ ...spec, exportIgnore: true, submodules: false });
    if (toSRI(ignored.narHash) === expected)
      return `${why}; with export-ignore applied the narHash is the recorded one: re-lock the input with Nix 2.20 or later (see docs/differences-from-nix.md)`;
  }
  const subst = attrs.has('export-subst') ? ' (export-subst cannot be reproduced)' : '';
  return `${why}${subst}: re-lock the input with Nix 2.20 or later (see docs/differences-from-nix.md)`;
}
