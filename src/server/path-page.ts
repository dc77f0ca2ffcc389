/**
 * `GET /path/<hashpart>`: one store path's own page, for a person: where it
 * came from (every source that produced it, with its ref and rev and when it
 * was fetched; the pins and lockfiles that resolved to it; its last use —
 * provenance.ts), its narinfo as served (every field, signatures and
 * references on their own, references linked to their pages when the cache
 * has them), and its files as a tree from the `.ls` listing (listing.ts:
 * castore metadata only, no file contents are read). Large trees are cut at
 * `MAX_TREE_ENTRIES` entries. 400 for a malformed hash part, 404 for a path
 * the cache does not have. Same policy as the index page: self-contained,
 * strict CSP, everything escaped.
 */

import type { NarListingNode } from '../nix/nar/listing.js';
import { parseNarInfo } from '../nix/narinfo.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import { parseStorePathBaseName, storePathBaseName, storePathHashPart } from '../nix/store-path.js';
import { HttpError, type RequestContext } from './http.js';
import { escapeHtml, humanBytes, pinBadges, STYLE, sendPage, sourceText, timeCell } from './index-page.js';
import { castoreListing } from './listing.js';
import { parseHashPart } from './narinfo.js';
import { provenanceOf } from './provenance.js';
import type { ServerServices } from './services.js';

export const MAX_TREE_ENTRIES = 2000;

/** A listing node as nested lists: directories as open `<details>` at the top, closed below. */
function tree(root: NarListingNode, rootName: string): string {
  let budget = MAX_TREE_ENTRIES;
  let cut = 0;
  const item = (name: string, node: NarListingNode, depth: number): string => {
    if (budget <= 0) {
      cut++;
      return '';
    }
    budget--;
    const n = escapeHtml(name);
    switch (node.type) {
      case 'regular':
        return `<li data-type="regular">${n}${node.executable ? ' <span class="meta">(executable)</span>' : ''} <span class="meta">${escapeHtml(humanBytes(node.size))}</span></li>`;
      case 'symlink':
        return `<li data-type="symlink">${n} → <span class="meta">${escapeHtml(node.target)}</span></li>`;
      case 'directory': {
        const children = Object.entries(node.entries)
          .map(([k, v]) => item(k, v, depth + 1))
          .join('');
        const count = Object.keys(node.entries).length;
        return `<li data-type="directory"><details${depth < 1 ? ' open' : ''}><summary>${n}/ <span class="meta">${count} ${count === 1 ? 'entry' : 'entries'}</span></summary><ul class="tree">${children}</ul></details></li>`;
      }
    }
  };
  const body = item(rootName, root, 0);
  return `<ul class="tree" id="files">${body}</ul>${cut > 0 ? `<p class="meta">${cut} more entries not shown.</p>` : ''}`;
}

function list(items: string[], empty: string): string {
  return items.length === 0
    ? `<p class="meta">${empty}</p>`
    : `<ul>${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;
}

export async function getPathPage(ctx: RequestContext, s: ServerServices): Promise<void> {
  const hashPart = ctx.params[0]!;
  const info = await s.store.pathInfos.get(parseHashPart(hashPart));
  if (info === undefined) throw new HttpError(404, `no path with hash ${hashPart} in this cache`);
  const storeDir = s.store.storeDir;
  const baseName = storePathBaseName(info.storePath);
  const full = `${storeDir}/${baseName}`;
  const narinfoText = s.narInfos.text(info);
  const narinfo = parseNarInfo(narinfoText, { storeDir });
  const provenance = await provenanceOf(s.store).get();
  const prov = provenance.byPath.get(baseName);
  const lastUsed = provenance.lastUsed.get(Buffer.from(info.storePath.digest).toString('hex'));

  const sources = (prov?.sources ?? []).map(
    (src) =>
      `<tr><td class="s">${escapeHtml(sourceText(src))}</td><td class="t">${timeCell(src.fetchedAt)}</td></tr>`,
  );
  const pins = (prov?.pins ?? []).map(
    (pin) =>
      `<tr><td>${escapeHtml(pin.pin)}</td><td class="s">${escapeHtml(pin.lockfile ?? '')}</td><td class="t">${timeCell(pin.recordedAt)}</td></tr>`,
  );
  const references = await Promise.all(
    narinfo.references.map(async (ref) => {
      const sp = parseStorePathBaseName(ref);
      const here = (await s.store.pathInfos.get(sp.digest)) !== undefined;
      const text = `${escapeHtml(storeDir)}/${escapeHtml(ref)}`;
      return here ? `<a href="${storePathHashPart(sp)}">${text}</a>` : text;
    }),
  );
  let files: string;
  try {
    files = tree((await castoreListing(info.node, s.store)).root, baseName);
  } catch (e) {
    files = `<p class="meta">No listing: ${escapeHtml(e instanceof Error ? e.message : String(e))}</p>`;
  }
  const narHash = encodeNix32(info.narSha256);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(baseName)} · fetch-cache</title><style>${STYLE}</style></head>
<body>
<p><a href="../">← all store paths</a></p>
<h1 id="store-path">${escapeHtml(full)}</h1>
<p>${pinBadges(prov)}<a href="../${hashPart}.narinfo">narinfo</a> · <a href="../nar/${narHash}.nar">NAR</a> (${escapeHtml(humanBytes(info.narSize))}) · <a href="../${hashPart}.ls">listing</a></p>
<h2>Where it came from</h2>
${sources.length === 0 ? '<p class="meta" id="sources">No fetch recorded: added or uploaded.</p>' : `<table id="sources"><thead><tr><th>Source</th><th>Fetched</th></tr></thead><tbody>${sources.join('')}</tbody></table>`}
${pins.length === 0 ? '' : `<h3>Pins</h3><table id="pins"><thead><tr><th>Pin</th><th>Lockfile</th><th>Resolved</th></tr></thead><tbody>${pins.join('')}</tbody></table>`}
<p>Last used: <span id="last-used">${lastUsed === undefined ? 'never recorded' : timeCell(lastUsed)}</span></p>
<h2>narinfo</h2>
<dl id="narinfo">${narinfo.lines.map((l) => `<dt>${escapeHtml(l.key)}</dt><dd class="mono">${escapeHtml(l.value)}</dd>`).join('')}</dl>
<h3>Signatures</h3>
<div id="signatures">${list(
    narinfo.sigs.map((x) => `<code>${escapeHtml(x)}</code>`),
    'None: a content-addressed path needs none.',
  )}</div>
<h3>References</h3>
<div id="references">${list(references, 'None.')}</div>
<h2>Files</h2>
${files}
</body></html>
`;
  sendPage(ctx, html);
}
