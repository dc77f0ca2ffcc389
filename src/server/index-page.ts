/**
 * `GET /`: a small page for a person with a browser: what this cache is, how
 * to use it from nix.conf, its public keys and priority, how many paths and
 * NAR bytes it holds, and a searchable list of store paths: where each came
 * from (URL, or git URL and rev; the pin and lockfile that put it there —
 * provenance.ts), when it was fetched and last used, its size, and links to
 * its own page (path-page.ts) and its narinfo/NAR/listing URLs. Every fetched
 * tree is named `…-source`, so the source is what tells them apart, and the
 * search matches it too. Self-contained: inline style and script allowed by
 * hash in a strict Content-Security-Policy, no external assets, no cookies.
 * `?q=` filters on the server (so it works without script) and the script
 * filters the shown rows as you type. At most `MAX_ROWS` rows.
 */

import { toBase64 } from '../nix/hash.js';
import { sha256 } from '../nix/hashing.js';
import { decodeNix32 } from '../nix/nixbase32.js';
import { formatPublicKey, publicKeyOf } from '../nix/signing.js';
import { NO_STORE, type RequestContext, sendBody } from './http.js';
import { type PathSource, type Provenance, provenanceOf } from './provenance.js';
import type { ServerServices } from './services.js';
import type { PathSummary } from './store-stats.js';

export const MAX_ROWS = 1000;

export const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#222}
h1{font-size:1.5em;overflow-wrap:anywhere}code,td.p,.mono{font-family:ui-monospace,monospace;font-size:.9em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2em .5em;border-bottom:1px solid #ddd;vertical-align:top}
td.n{text-align:right;white-space:nowrap}td.t{white-space:nowrap;font-size:.85em;color:#555}td.s{overflow-wrap:anywhere;font-size:.9em}
input{font:inherit;width:100%;padding:.3em;box-sizing:border-box}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}dt{font-weight:600}dd{margin-left:1.5em;overflow-wrap:anywhere}
.pin{display:inline-block;background:#e8f0fe;border-radius:.3em;padding:0 .35em;margin:0 .2em .1em 0;font-size:.85em}
ul.tree{list-style:none;padding-left:1.2em;margin:.1em 0}ul.tree li{font-family:ui-monospace,monospace;font-size:.9em}
ul.tree summary{cursor:pointer}.meta{color:#666}`;

const SCRIPT = `(()=>{const q=document.getElementById('q');const rows=[...document.querySelectorAll('#paths tbody tr')];const shown=document.getElementById('shown');
const f=()=>{const t=q.value.trim().toLowerCase();let n=0;for(const r of rows){const m=t===''||r.dataset.search.includes(t);r.hidden=!m;if(m)n++}shown.textContent=String(n)};
q.addEventListener('input',f);f()})();`;

const cspHash = (s: string) => `'sha256-${toBase64(sha256(s))}'`;

export const INDEX_CSP = [
  "default-src 'none'",
  `style-src ${cspHash(STYLE)}`,
  `script-src ${cspHash(SCRIPT)}`,
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `1.5 MiB` style sizes. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** `2026-12-07 03:12 UTC` in a `<time>` element; an empty cell for none. */
export function timeCell(ms: number | undefined): string {
  if (ms === undefined || ms <= 0) return '';
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

/** One line saying where a source is: `git <url> <ref> @ <rev>` or `<type> <url>`. */
export function sourceText(s: PathSource): string {
  if (s.type === 'git') {
    const ref = s.ref === undefined ? '' : ` ${s.ref}`;
    return `git ${s.url}${ref}${s.rev === undefined ? '' : ` @ ${s.rev}`}`;
  }
  return `${s.type} ${s.url}`;
}

/** Everything a search matches for a path: its name, its sources, its pins. */
function searchText(p: PathSummary, prov: Provenance | undefined): string {
  const parts = [p.baseName];
  for (const s of prov?.sources ?? []) parts.push(sourceText(s));
  for (const pin of prov?.pins ?? []) parts.push(`pin ${pin.pin}`, pin.lockfile ?? '');
  return parts.join(' ').toLowerCase();
}

export function pinBadges(prov: Provenance | undefined): string {
  return (prov?.pins ?? [])
    .map(
      (pin) =>
        `<span class="pin"${pin.lockfile === undefined ? '' : ` title="${escapeHtml(pin.lockfile)}"`}>${escapeHtml(pin.pin)}</span>`,
    )
    .join('');
}

function row(
  p: PathSummary,
  storeDir: string,
  prov: Provenance | undefined,
  lastUsed: number | undefined,
): string {
  const name = escapeHtml(p.baseName);
  const sources = prov?.sources ?? [];
  const first = sources[0];
  const source =
    first === undefined
      ? '<span class="meta">added or uploaded</span>'
      : `${escapeHtml(sourceText(first))}${sources.length > 1 ? ` <span class="meta">(+${sources.length - 1} more)</span>` : ''}`;
  return `<tr data-search="${escapeHtml(searchText(p, prov))}"><td class="p"><a href="path/${p.hashPart}">${escapeHtml(storeDir)}/${name}</a></td><td class="s">${pinBadges(prov)}${source}</td><td class="t">${timeCell(first?.fetchedAt)}</td><td class="t">${timeCell(lastUsed)}</td><td class="n">${escapeHtml(humanBytes(p.narSize))}</td><td><a href="${p.hashPart}.narinfo">narinfo</a> <a href="nar/${p.narHash}.nar">nar</a> <a href="${p.hashPart}.ls">ls</a></td></tr>`;
}

/** Sort by name, then hash: what a person scans for. */
function byName(a: PathSummary, b: PathSummary): number {
  const an = a.baseName.slice(33);
  const bn = b.baseName.slice(33);
  return an < bn ? -1 : an > bn ? 1 : a.hashPart < b.hashPart ? -1 : a.hashPart > b.hashPart ? 1 : 0;
}

/** The hex store path digest of a hash part, as the use records key it. */
function digestHex(hashPart: string): string {
  return Buffer.from(decodeNix32(hashPart)).toString('hex');
}

export async function getIndexPage(ctx: RequestContext, s: ServerServices): Promise<void> {
  const [snap, provenance] = await Promise.all([s.stats.snapshot(), provenanceOf(s.store).get()]);
  const q = (new URLSearchParams(ctx.query).get('q') ?? '').trim().slice(0, 200);
  const needle = q.toLowerCase();
  const matching =
    needle === ''
      ? snap.paths
      : snap.paths.filter((p) => searchText(p, provenance.byPath.get(p.baseName)).includes(needle));
  const rows = [...matching].sort(byName).slice(0, MAX_ROWS);
  const keys = s.config.signingKeys.map((k) => formatPublicKey(publicKeyOf(k)));
  const host = typeof ctx.req.headers.host === 'string' ? ctx.req.headers.host : 'this-host';
  const base = `http://${host}`;
  const storeDir = s.store.storeDir;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>fetch-cache binary cache</title><style>${STYLE}</style></head>
<body>
<h1>fetch-cache binary cache</h1>
<p>A Nix binary cache served by <b>fetch-cache</b> from its content-addressed store: fetched sources and uploaded paths, substitutable by Nix.</p>
<dl>
<dt>Store directory</dt><dd><code>${escapeHtml(storeDir)}</code></dd>
<dt>Priority</dt><dd id="priority">${s.config.priority}</dd>
<dt>Public keys</dt><dd id="keys">${keys.length === 0 ? 'none (only content-addressed paths verify without a signature)' : keys.map((k) => `<code>${escapeHtml(k)}</code>`).join('<br>')}</dd>
<dt>Contents</dt><dd><span id="path-count">${snap.paths.length}</span> paths, <span id="nar-bytes">${escapeHtml(humanBytes(snap.narBytes))}</span> of NAR</dd>
</dl>
<h2>Use it</h2>
<pre>substituters = ${escapeHtml(base)}
trusted-public-keys = ${escapeHtml(keys.join(' ') || '…')}</pre>
<h2>Store paths</h2>
<form method="get" action="./"><input id="q" name="q" type="search" placeholder="Search store paths, URLs, revs, pins" value="${escapeHtml(q)}" autocomplete="off"></form>
<p><span id="shown">${rows.length}</span> shown of ${matching.length} matching${matching.length > rows.length ? ` (first ${MAX_ROWS})` : ''}.</p>
<table id="paths"><thead><tr><th>Store path</th><th>Source</th><th>Fetched</th><th>Last used</th><th>NAR size</th><th>Files</th></tr></thead><tbody>
${rows.map((p) => row(p, storeDir, provenance.byPath.get(p.baseName), provenance.lastUsed.get(digestHex(p.hashPart)))).join('\n')}
</tbody></table>
<script>${SCRIPT}</script>
</body></html>
`;
  sendPage(ctx, html);
}

/** An HTML page for a person, with the strict policy of the header. */
export function sendPage(ctx: RequestContext, html: string): void {
  sendBody(ctx, 200, 'text/html; charset=utf-8', html, {
    'Content-Security-Policy': INDEX_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': NO_STORE,
  });
}

/** Browsers ask for `/favicon.ico`; an empty 204 keeps their consoles quiet. */
export function getFavicon(ctx: RequestContext): void {
  ctx.res.writeHead(204, { 'Cache-Control': 'public, max-age=86400' });
  ctx.res.end();
}
