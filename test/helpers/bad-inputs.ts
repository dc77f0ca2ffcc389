/**
 * Hostile inputs beyond archives (fixtures/bad/archives has those): NARs
 * built token by token, narinfo texts, manifests and lockfiles, URLs and
 * misbehaving HTTP responses. `scripts/make-bad-inputs.mjs` writes the files
 * under fixtures/bad/ and its README table from these lists; the
 * table-driven test (test/ops/bad-inputs.test.ts) reads the committed files
 * and asserts each one's error code and an unchanged store.
 */

export type BadKind = 'nar' | 'upload' | 'narinfo' | 'manifest' | 'lockfile' | 'url' | 'http';

export interface BadInput {
  /** Path under fixtures/bad/ (for `url` and `http`, a row of urls.json / http.json). */
  readonly file: string;
  readonly kind: BadKind;
  readonly attack: string;
  /** The FetchCacheError code expected (for `upload`, the HTTP status as `HTTP_4xx`). */
  readonly code: string;
}

// --- NAR wire tokens -----------------------------------------------------------------------------------------

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function str(s: string | Uint8Array, padByte = 0): Buffer {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s);
  const pad = Buffer.alloc((8 - (bytes.length % 8)) % 8, padByte);
  return Buffer.concat([u64(bytes.length), bytes, pad]);
}
const t = (...tokens: (string | Uint8Array)[]) => Buffer.concat(tokens.map((x) => str(x)));
const file = (contents: string) => t('(', 'type', 'regular', 'contents', contents, ')');
const entry = (name: string | Uint8Array, node: Buffer) =>
  Buffer.concat([t('entry', '(', 'name', name, 'node'), node, t(')')]);
const dir = (...entries: Buffer[]) => Buffer.concat([t('(', 'type', 'directory'), ...entries, t(')')]);
const nar = (node: Buffer) => Buffer.concat([t('nix-archive-1'), node]);

function deep(levels: number): Buffer {
  let node = file('x');
  for (let i = 0; i < levels; i++) node = dir(entry('d', node));
  return nar(node);
}

export const BAD_NARS: readonly (BadInput & { bytes: () => Uint8Array })[] = [
  {
    file: 'nar/empty.nar',
    kind: 'nar',
    attack: 'zero bytes',
    code: 'ERR_BAD_NAR',
    bytes: () => Buffer.alloc(0),
  },
  {
    file: 'nar/bad-magic.nar',
    kind: 'nar',
    attack: 'magic `nix-archive-2`: another format',
    code: 'ERR_BAD_NAR',
    bytes: () => Buffer.concat([t('nix-archive-2'), file('x')]),
  },
  {
    file: 'nar/truncated-magic.nar',
    kind: 'nar',
    attack: 'the stream ends inside the magic string',
    code: 'ERR_BAD_NAR',
    bytes: () => t('nix-archive-1').subarray(0, 12),
  },
  {
    file: 'nar/truncated-contents.nar',
    kind: 'nar',
    attack: 'a file declares 1000 bytes and the stream ends after 10',
    code: 'ERR_BAD_NAR',
    bytes: () =>
      Buffer.concat([t('nix-archive-1', '(', 'type', 'regular', 'contents'), u64(1000), Buffer.alloc(10)]),
  },
  {
    file: 'nar/huge-length.nar',
    kind: 'nar',
    attack: 'a file declares 2^62 bytes of contents (memory or disk exhaustion if believed)',
    code: 'ERR_BAD_NAR',
    bytes: () =>
      Buffer.concat([
        t('nix-archive-1', '(', 'type', 'regular', 'contents'),
        u64(2n ** 62n),
        Buffer.alloc(64),
      ]),
  },
  {
    file: 'nar/token-length-lie.nar',
    kind: 'nar',
    attack: 'a token string declares 2^40 bytes (a parser that allocates first runs out of memory)',
    code: 'ERR_BAD_NAR',
    bytes: () => Buffer.concat([t('nix-archive-1', '('), u64(2n ** 40n), Buffer.from('type')]),
  },
  {
    file: 'nar/nonzero-padding.nar',
    kind: 'nar',
    attack: 'padding bytes that are not zero (two encodings of one NAR)',
    code: 'ERR_BAD_NAR',
    bytes: () =>
      Buffer.concat([t('nix-archive-1', '(', 'type', 'regular', 'contents'), str('abc', 0x41), t(')')]),
  },
  {
    file: 'nar/unsorted.nar',
    kind: 'nar',
    attack: 'directory entries `b` before `a` (non-canonical: two NARs for one tree)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('b', file('1')), entry('a', file('2')))),
  },
  {
    file: 'nar/duplicate-name.nar',
    kind: 'nar',
    attack: 'two entries named `a` (the second would overwrite the first)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('a', file('1')), entry('a', file('2')))),
  },
  {
    file: 'nar/name-dotdot.nar',
    kind: 'nar',
    attack: 'an entry named `..` (path traversal on restore)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('..', file('x')))),
  },
  {
    file: 'nar/name-dot.nar',
    kind: 'nar',
    attack: 'an entry named `.`',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('.', file('x')))),
  },
  {
    file: 'nar/name-slash.nar',
    kind: 'nar',
    attack: 'an entry named `a/b` (writes into a subdirectory on restore)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('a/b', file('x')))),
  },
  {
    file: 'nar/name-nul.nar',
    kind: 'nar',
    attack: 'an entry name with a NUL byte (truncated by C APIs)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry(Buffer.from('a\0b'), file('x')))),
  },
  {
    file: 'nar/name-empty.nar',
    kind: 'nar',
    attack: 'an empty entry name',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('', file('x')))),
  },
  {
    file: 'nar/name-256.nar',
    kind: 'nar',
    attack: 'an entry name of 256 bytes (over NAME_MAX)',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(dir(entry('n'.repeat(256), file('x')))),
  },
  {
    file: 'nar/symlink-empty-target.nar',
    kind: 'nar',
    attack: 'a symlink with an empty target',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(t('(', 'type', 'symlink', 'target', '', ')')),
  },
  {
    file: 'nar/unknown-type.nar',
    kind: 'nar',
    attack: 'a node of type `fifo`',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(t('(', 'type', 'fifo', ')')),
  },
  {
    file: 'nar/bad-executable-marker.nar',
    kind: 'nar',
    attack: '`executable` followed by a non-empty string',
    code: 'ERR_BAD_NAR',
    bytes: () => nar(t('(', 'type', 'regular', 'executable', 'yes', 'contents', 'x', ')')),
  },
  {
    file: 'nar/deep.nar',
    kind: 'nar',
    attack: '100 nested directories (stack exhaustion in a recursive reader)',
    code: 'ERR_BAD_NAR',
    bytes: () => deep(100),
  },
  {
    file: 'nar/trailing-garbage.nar',
    kind: 'nar',
    attack: 'a valid NAR followed by more bytes (smuggled data after the end)',
    code: 'ERR_BAD_NAR',
    bytes: () => Buffer.concat([nar(file('ok')), Buffer.from('extra bytes here')]),
  },
  {
    file: 'nar/missing-close.nar',
    kind: 'nar',
    attack: 'a directory never closed: the stream ends inside the tree',
    code: 'ERR_BAD_NAR',
    bytes: () => Buffer.concat([t('nix-archive-1', '(', 'type', 'directory'), entry('a', file('1'))]),
  },
];

export const BAD_UPLOADS: readonly BadInput[] = [
  { file: 'nar/unsorted.nar', kind: 'upload', attack: 'uploading a non-canonical NAR', code: 'HTTP_400' },
  {
    file: 'nar/name-dotdot.nar',
    kind: 'upload',
    attack: 'uploading a NAR with a `..` entry',
    code: 'HTTP_400',
  },
  {
    file: 'nar/huge-length.nar',
    kind: 'upload',
    attack: 'uploading a NAR that claims 2^62 bytes',
    code: 'HTTP_400',
  },
  {
    file: 'nar/trailing-garbage.nar',
    kind: 'upload',
    attack: 'uploading a NAR with bytes after its end',
    code: 'HTTP_400',
  },
];

// --- narinfo, manifests, lockfiles ---------------------------------------------------------------------------

const SP = '/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello-2.12';
const NH = 'sha256:1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn';
const okNarInfo = (over: Record<string, string | undefined> = {}): string => {
  const fields: Record<string, string | undefined> = {
    StorePath: SP,
    URL: 'nar/1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn.nar',
    Compression: 'none',
    NarHash: NH,
    NarSize: '1000',
    References: '',
    ...over,
  };
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');
};

export const BAD_TEXTS: readonly (BadInput & { text: () => string })[] = [
  {
    file: 'narinfo/no-storepath.narinfo',
    kind: 'narinfo',
    attack: 'no StorePath line',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ StorePath: undefined }),
  },
  {
    file: 'narinfo/no-narhash.narinfo',
    kind: 'narinfo',
    attack: 'no NarHash line',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ NarHash: undefined }),
  },
  {
    file: 'narinfo/bad-narhash.narinfo',
    kind: 'narinfo',
    attack: 'NarHash that is not a hash',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ NarHash: 'sha256:not-a-hash' }),
  },
  {
    file: 'narinfo/narsize-negative.narinfo',
    kind: 'narinfo',
    attack: 'NarSize -1',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ NarSize: '-1' }),
  },
  {
    file: 'narinfo/narsize-huge.narinfo',
    kind: 'narinfo',
    attack: 'NarSize beyond 2^64 (overflow)',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ NarSize: '99999999999999999999999' }),
  },
  {
    file: 'narinfo/storepath-outside.narinfo',
    kind: 'narinfo',
    attack: 'StorePath /etc/passwd: outside the store',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ StorePath: '/etc/passwd' }),
  },
  {
    file: 'narinfo/storepath-dotdot.narinfo',
    kind: 'narinfo',
    attack: 'StorePath climbing out with `..`',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ StorePath: `${SP}/../../../etc/shadow` }),
  },
  {
    file: 'narinfo/reference-dotdot.narinfo',
    kind: 'narinfo',
    attack: 'a reference `../../etc`',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ References: '../../etc' }),
  },
  {
    file: 'narinfo/no-colon.narinfo',
    kind: 'narinfo',
    attack: 'a line without `: `',
    code: 'ERR_BAD_NARINFO',
    text: () => `${okNarInfo()}garbage line\n`,
  },
  {
    file: 'narinfo/binary.narinfo',
    kind: 'narinfo',
    attack: 'binary junk instead of text',
    code: 'ERR_BAD_NARINFO',
    text: () => '\u0000\u0001\u0002\uffff\n\n\n',
  },
  {
    file: 'narinfo/deriver-dotdot.narinfo',
    kind: 'narinfo',
    attack: 'a Deriver `../x.drv` (a path outside the store)',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ Deriver: '../x.drv' }),
  },
  {
    file: 'narinfo/filehash-short.narinfo',
    kind: 'narinfo',
    attack: 'a FileHash of the wrong length',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ FileHash: 'sha256:zzz' }),
  },
  {
    file: 'narinfo/no-url.narinfo',
    kind: 'narinfo',
    attack: 'an empty URL (where would the NAR come from?)',
    code: 'ERR_BAD_NARINFO',
    text: () => okNarInfo({ URL: '' }),
  },
  {
    file: 'manifest/not-toml.toml',
    kind: 'manifest',
    attack: 'not TOML at all',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[[[ this is not toml\n',
  },
  {
    file: 'manifest/unknown-type.toml',
    kind: 'manifest',
    attack: 'a pin of an unknown type',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[pins.x]\ntype = "svn"\nurl = "https://example.org/x"\n',
  },
  {
    file: 'manifest/ftp-url.toml',
    kind: 'manifest',
    attack: 'a pin URL with the ftp scheme',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[pins.x]\ntype = "url"\nurl = "ftp://example.org/x.tar.gz"\n',
  },
  {
    file: 'manifest/no-url.toml',
    kind: 'manifest',
    attack: 'a url pin without a URL',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[pins.x]\ntype = "url"\n',
  },
  {
    file: 'manifest/bad-name.toml',
    kind: 'manifest',
    attack: 'a pin name with `/` and `..` (used in paths)',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[pins."../x"]\ntype = "url"\nurl = "https://example.org/x"\n',
  },
  {
    file: 'manifest/wrong-types.toml',
    kind: 'manifest',
    attack: 'values of the wrong type (url = 42)',
    code: 'ERR_BAD_MANIFEST',
    text: () => '[pins.x]\ntype = "url"\nurl = 42\n',
  },
  {
    file: 'lockfile/not-json.lock',
    kind: 'lockfile',
    attack: 'not JSON',
    code: 'ERR_BAD_LOCKFILE',
    text: () => '{"version": 1, "pins": ',
  },
  {
    file: 'lockfile/future-version.lock',
    kind: 'lockfile',
    attack: 'a lockfile version this reader does not know',
    code: 'ERR_BAD_LOCKFILE',
    text: () => '{"version": 99, "pins": {}}\n',
  },
  {
    file: 'lockfile/pins-array.lock',
    kind: 'lockfile',
    attack: '`pins` of the wrong shape (an array)',
    code: 'ERR_BAD_LOCKFILE',
    text: () => '{"version": 1, "pins": []}\n',
  },
  {
    file: 'lockfile/bad-narhash.lock',
    kind: 'lockfile',
    attack: 'a locked narHash that is not a hash',
    code: 'ERR_BAD_LOCKFILE',
    text: () =>
      '{"version": 1, "pins": {"x": {"type": "tarball", "url": "https://example.org/x.tar.gz", "narHash": "sha256-!!!", "storePath": "/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-source"}}}\n',
  },
  {
    file: 'lockfile/storepath-outside.lock',
    kind: 'lockfile',
    attack: 'a locked storePath outside the store',
    code: 'ERR_BAD_LOCKFILE',
    text: () =>
      '{"version": 1, "pins": {"x": {"type": "tarball", "url": "https://example.org/x.tar.gz", "narHash": "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "storePath": "/etc/passwd"}}}\n',
  },
];

// --- URLs ------------------------------------------------------------------------------------------------------

export interface BadUrl {
  readonly url: string;
  readonly attack: string;
  readonly code: string;
}

export const BAD_URLS: readonly BadUrl[] = [
  { url: 'ftp://example.org/x.tar.gz', attack: 'an unsupported scheme', code: 'ERR_BAD_URL' },
  { url: 'javascript:alert(1)', attack: 'a script URL', code: 'ERR_BAD_URL' },
  {
    url: 'data:text/plain,hello',
    attack: 'a data URL (content chosen by whoever wrote the URL)',
    code: 'ERR_BAD_URL',
  },
  { url: 'not a url', attack: 'not a URL at all', code: 'ERR_BAD_URL' },
  { url: 'http://[::1', attack: 'an unterminated IPv6 host', code: 'ERR_BAD_URL' },
  { url: 'http://127.0.0.1:1/', attack: 'no file name to make a store path name from', code: 'ERR_BAD_URL' },
  { url: 'http://127.0.0.1:1/..', attack: 'a file name `..`', code: 'ERR_BAD_URL' },
  {
    url: `http://127.0.0.1:1/${'a'.repeat(300)}`,
    attack: 'a file name longer than a store path name may be',
    code: 'ERR_BAD_URL',
  },
  {
    url: 'http://127.0.0.1:1/a%20b?c=d',
    attack: 'a file name with characters store path names forbid',
    code: 'ERR_BAD_URL',
  },
  { url: 'http://127.0.0.1:99999/x', attack: 'a port out of range', code: 'ERR_BAD_URL' },
];

// --- HTTP responses (served by the test from http.json) ---------------------------------------------------------

export interface BadHttp {
  readonly name: string;
  /** What the test server does. */
  readonly mode:
    | 'huge-headers'
    | 'endless'
    | 'status'
    | 'redirect-loop'
    | 'redirect-file'
    | 'cl-long'
    | 'cl-short'
    | 'stall-headers'
    | 'stall-body'
    | 'html'
    | 'wrong-bytes';
  /** How the input is fetched. */
  readonly fetch: 'url' | 'tarball' | 'nar';
  readonly status?: number;
  readonly attack: string;
  readonly code: string;
}

export const BAD_HTTP: readonly BadHttp[] = [
  {
    name: 'huge-headers',
    mode: 'huge-headers',
    fetch: 'url',
    attack: '1 MiB of response headers',
    code: 'ERR_HTTP',
  },
  {
    name: 'endless-tarball',
    mode: 'endless',
    fetch: 'tarball',
    attack: 'an endless body of junk as a tarball',
    code: 'ERR_BAD_ARCHIVE',
  },
  {
    name: 'endless-nar',
    mode: 'endless',
    fetch: 'nar',
    attack: 'an endless body of junk as a NAR',
    code: 'ERR_BAD_NAR',
  },
  { name: 'not-found', mode: 'status', status: 404, fetch: 'url', attack: 'a 404', code: 'ERR_HTTP' },
  {
    name: 'server-error',
    mode: 'status',
    status: 503,
    fetch: 'url',
    attack: '503 on every try',
    code: 'ERR_HTTP',
  },
  {
    name: 'redirect-loop',
    mode: 'redirect-loop',
    fetch: 'url',
    attack: 'a redirect to itself, forever',
    code: 'ERR_HTTP',
  },
  {
    name: 'redirect-to-file',
    mode: 'redirect-file',
    fetch: 'url',
    attack: 'a redirect to file:///etc/passwd (reading local files)',
    code: 'ERR_HTTP',
  },
  {
    name: 'content-length-long',
    mode: 'cl-long',
    fetch: 'url',
    attack: 'Content-Length larger than the body, then the connection closes',
    code: 'ERR_HTTP',
  },
  {
    name: 'content-length-short',
    mode: 'cl-short',
    fetch: 'url',
    attack: 'Content-Length smaller than the body (smuggled bytes after it)',
    code: 'ERR_HTTP',
  },
  {
    name: 'stall-headers',
    mode: 'stall-headers',
    fetch: 'url',
    attack: 'headers never come (slowloris)',
    code: 'ERR_HTTP',
  },
  {
    name: 'stall-body',
    mode: 'stall-body',
    fetch: 'url',
    attack: 'the body stops mid-way and never resumes',
    code: 'ERR_HTTP',
  },
  {
    name: 'html-as-tarball',
    mode: 'html',
    fetch: 'tarball',
    attack: 'an HTML error page with status 200 instead of the tarball',
    code: 'ERR_BAD_ARCHIVE',
  },
  {
    name: 'wrong-bytes',
    mode: 'wrong-bytes',
    fetch: 'url',
    attack: 'other bytes than the pinned hash (a poisoned mirror)',
    code: 'ERR_HASH_MISMATCH',
  },
];
