/**
 * `GET /`: a small page for a person with a browser: what this cache is, how
 * to use it from nix.conf, its public keys and priority, how many paths and
 * NAR bytes it holds, and a searchable list of store paths with sizes and
 * their narinfo/NAR/listing URLs. Self-contained: inline style and script
 * allowed by hash in a strict Content-Security-Policy, no external assets,
 * no cookies. `?q=` filters on the server (so it works without script) and
 * the script filters the shown rows as you type. At most `MAX_ROWS` rows.
 */

import { toBase64 } from '../nix/hash.js';
import { sha256 } from '../nix/hashing.js';
import { formatPublicKey, publicKeyOf } from '../nix/signing.js';
import { NO_STORE, type RequestContext, sendBody } from './http.js';
import type { ServerServices } from './services.js';
import type { PathSummary } from './store-stats.js';

export const MAX_ROWS = 1000;

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{font-size:1.5em}code,td.p{font-family:ui-monospace,monospace;font-size:.9em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2em .5em;border-bottom:1px solid #ddd}
td.n{text-align:right;white-space:nowrap}input{font:inherit;width:100%;padding:.3em;box-sizing:border-box}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}dt{font-weight:600}`;

const SCRIPT = `(()=>{const q=document.getElementById('q');const rows=[...document.querySelectorAll('#paths tbody tr')];const shown=document.getElementById('shown');
const f=()=>{const t=q.value.trim().toLowerCase();let n=0;for(const r of rows){const m=t===''||r.dataset.name.includes(t);r.hidden=!m;if(m)n++}shown.textContent=String(n)};
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

function row(p: PathSummary, storeDir: string): string {
  const name = escapeHtml(p.baseName);
  return `<tr data-name="${escapeHtml(p.baseName.toLowerCase())}"><td class="p">${escapeHtml(storeDir)}/${name}</td><td class="n">${escapeHtml(humanBytes(p.narSize))}</td><td><a href="${p.hashPart}.narinfo">narinfo</a> <a href="nar/${p.narHash}.nar">nar</a> <a href="${p.hashPart}.ls">ls</a></td></tr>`;
}

/** Sort by name, then hash: what a person scans for. */
function byName(a: PathSummary, b: PathSummary): number {
  const an = a.baseName.slice(33);
  const bn = b.baseName.slice(33);
  return an < bn ? -1 : an > bn ? 1 : a.hashPart < b.hashPart ? -1 : a.hashPart > b.hashPart ? 1 : 0;
}

export async function getIndexPage(ctx: RequestContext, s: ServerServices): Promise<void> {
  const snap = await s.stats.snapshot();
  const q = (new URLSearchParams(ctx.query).get('q') ?? '').trim().slice(0, 200);
  const needle = q.toLowerCase();
  const matching =
    needle === '' ? snap.paths : snap.paths.filter((p) => p.baseName.toLowerCase().includes(needle));
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
<form method="get" action="./"><input id="q" name="q" type="search" placeholder="Search store paths" value="${escapeHtml(q)}" autocomplete="off"></form>
<p><span id="shown">${rows.length}</span> shown of ${matching.length} matching${matching.length > rows.length ? ` (first ${MAX_ROWS})` : ''}.</p>
<table id="paths"><thead><tr><th>Store path</th><th>NAR size</th><th>Files</th></tr></thead><tbody>
${rows.map((p) => row(p, storeDir)).join('\n')}
</tbody></table>
<script>${SCRIPT}</script>
</body></html>
`;
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
