/**
 * The download client every URL-based fetcher uses: GET over Node's http/https with the
 * transfer policy of Nix's `filetransfer.cc` (docs/formats.md §5). Bounded
 * redirects; connect, headers and body-idle timeouts; retries with
 * exponential backoff and jitter on connection errors, 5xx (but 501/505/511),
 * 408 and 429; a transfer that drops mid-body resumes with
 * `Range: bytes=N-` (+ `If-Range`) — it starts over from byte 0 only while no
 * byte has been handed to the consumer, and fails with ERR_HTTP when it
 * cannot resume after that. A body shorter or longer than its Content-Length
 * is ERR_HTTP. Validators from an earlier transfer make the request
 * conditional (304 → `notModified`). Mirrors are tried in order after the
 * URL; `file://` URLs are read from disk; `offline` refuses every network URL
 * before a socket is opened. A body with a Content-Encoding (gzip, deflate,
 * br, zstd …; none is asked for, as Nix asks for none) is handed out decoded,
 * as curl and Nix hand it out: hashes are of the decoded bytes.
 *
 * Each attempt uses its own connection (no agent, no keep-alive): a download
 * is large and rare, and owning the connection lets us see bytes the server
 * sent after the declared end of the body (Node's parser reports them as an
 * error of the request after the response), which is how "longer than
 * Content-Length" is detected. Node's own TLS trusts what every Node program
 * trusts (NODE_EXTRA_CA_CERTS included). node:https loads only for an https
 * URL, so a fetch over http or file:// does not pay for TLS.
 */

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { fileURLToPath, urlToHttpOptions } from 'node:url';
import { FetchCacheError } from '../errors.js';
import { CONTENT_CODINGS, decodeContentCoding } from './decompress.js';
import {
  DEFAULT_STALLED_DOWNLOAD_TIMEOUT_MS,
  MAX_DOWNLOAD_SIZE_ENV,
  parseByteCount,
  parseStalledDownloadTimeout,
  STALLED_DOWNLOAD_TIMEOUT_ENV,
} from './download-limits.js';

export const USER_AGENT = 'fetch-cache/0.1';

/**
 * Bytes of a body the connection reads ahead while the consumer is busy (Node's default is 16 KiB, after
 * which the socket pauses: each chunk then waits for a read of its own). With 1 MiB the network keeps
 * filling while a chunk is decompressed and hashed, and chunks arrive larger.
 */
const BODY_BUFFER = 1 << 20;

/** Limits and behaviour of an `HttpClient`; unset limits come from the environment (docs/cli.md). */
export interface HttpClientOptions {
  readonly userAgent?: string;
  /** Redirects followed per request (default 10). */
  readonly maxRedirects?: number;
  /** Tries per URL, resumptions included (default 5, Nix's `download-attempts`). */
  readonly attempts?: number;
  /** First backoff delay; doubles per retry, with jitter (default 250 ms). */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly connectTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  /** Longest pause between two body chunks (default 60 s). */
  readonly bodyTimeoutMs?: number;
  /**
   * Nix's `stalled-download-timeout`: a transfer that moves less than 1 byte/s over this long (fewer bytes
   * than seconds) fails; it is retried like a dropped connection. Default from
   * `FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT` (seconds), else 300 s as in Nix; 0 turns it off.
   */
  readonly stalledDownloadTimeoutMs?: number;
  /**
   * The most bytes one download may bring (the body as received, and as decoded when it has a
   * Content-Encoding); past it the transfer fails at once. Default from `FETCH_CACHE_MAX_DOWNLOAD_SIZE`
   * (bytes, or with a K/M/G/T suffix), else no limit, as in Nix.
   */
  readonly maxDownloadBytes?: number;
  /** Where the two defaults above are read from (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Refuse every http(s) URL with ERR_OFFLINE, before any socket is opened. */
  readonly offline?: boolean;
}

function fromEnv(env: NodeJS.ProcessEnv, name: string, parse: (text: string) => number): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  try {
    return parse(v);
  } catch (e) {
    throw new TypeError(`${name}: ${(e as Error).message}`);
  }
}

export interface DownloadProgress {
  readonly bytes: number;
  readonly total: number | undefined;
  /** Bytes per second since the transfer started. */
  readonly rate: number;
  readonly done: boolean;
}

export interface RetryInfo {
  readonly url: string;
  readonly attempt: number;
  readonly reason: string;
  /** The byte the transfer continues at: 0 for a clean restart. */
  readonly resumeAt: number;
}

export interface DownloadRequest {
  readonly url: string;
  readonly mirrors?: readonly string[] | undefined;
  /** Validators of an earlier transfer of `url`: the request becomes conditional. */
  readonly etag?: string | undefined;
  readonly lastModified?: string | undefined;
  readonly onProgress?: ((p: DownloadProgress) => void) | undefined;
  /** Told whenever the transfer is retried, restarted (before any byte was handed out) or resumed. */
  readonly onRetry?: ((info: RetryInfo) => void) | undefined;
}

export type Download =
  | { readonly notModified: true; readonly url: string }
  | {
      readonly notModified: false;
      /** Where the bytes come from, after mirrors and redirects. */
      readonly url: string;
      readonly etag: string | undefined;
      readonly lastModified: string | undefined;
      /** Content-Length, when the server sent one. */
      readonly size: number | undefined;
      /** The body; iterate it exactly once. */
      readonly body: AsyncIterable<Uint8Array>;
    };

/** A URL for messages: userinfo replaced, as snix's Debug output does. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = 'redacted';
    if (u.password !== '') u.password = 'redacted';
    return u.href;
  } catch {
    return url;
  }
}

export function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new FetchCacheError('ERR_BAD_URL', `invalid URL '${redactUrl(url)}'`, { path: url, cause: e });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'file:') {
    throw new FetchCacheError(
      'ERR_BAD_URL',
      `unsupported URL scheme '${u.protocol}' in '${redactUrl(url)}'`,
      {
        path: redactUrl(url),
      },
    );
  }
  return u;
}

function httpError(message: string, url: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError('ERR_HTTP', message, {
    path: redactUrl(url),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Statuses Nix retries (§6.5): 408, 429 and every 5xx but 501, 505, 511. */
function retryableStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505 && status !== 511)
  );
}

/** Connection-level failures (refused, reset, timeouts, dropped mid-body) are worth another try. */
function transientError(e: unknown): boolean {
  if (e instanceof StalledError) return true;
  if (e instanceof FetchCacheError) return false;
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A response: status, headers (names in lower case) and the body, read once. */
interface Response {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: IncomingMessage;
}

interface Opened {
  readonly res: Response;
  readonly url: string;
  /** Set when the connection saw data after the end of a response. */
  trailing: Error | undefined;
  /** Drop the connection (and the body, if it is still being read). */
  close(): void;
}

/** A timeout of ours, with a code that makes it a connection failure worth another try. */
function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

function header(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The HTTP(S) client of the fetchers: redirects, timeouts, retries, Content-Encoding decoding,
 * stall and size limits.
 */
export class HttpClient {
  private readonly o: Required<HttpClientOptions>;

  constructor(options: HttpClientOptions = {}) {
    const env = options.env ?? process.env;
    this.o = {
      userAgent: options.userAgent ?? USER_AGENT,
      maxRedirects: options.maxRedirects ?? 10,
      attempts: options.attempts ?? 5,
      retryBaseMs: options.retryBaseMs ?? 250,
      retryMaxMs: options.retryMaxMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
      headersTimeoutMs: options.headersTimeoutMs ?? 60_000,
      bodyTimeoutMs: options.bodyTimeoutMs ?? 60_000,
      stalledDownloadTimeoutMs:
        options.stalledDownloadTimeoutMs ??
        fromEnv(env, STALLED_DOWNLOAD_TIMEOUT_ENV, parseStalledDownloadTimeout) ??
        DEFAULT_STALLED_DOWNLOAD_TIMEOUT_MS,
      maxDownloadBytes:
        options.maxDownloadBytes ??
        fromEnv(env, MAX_DOWNLOAD_SIZE_ENV, parseByteCount) ??
        Number.POSITIVE_INFINITY,
      env,
      offline: options.offline ?? false,
    };
  }

  get offline(): boolean {
    return this.o.offline;
  }

  /** Start a download: resolves once a response (or a 304) is there; the body streams after. */
  async download(req: DownloadRequest): Promise<Download> {
    const urls = [req.url, ...(req.mirrors ?? [])];
    for (const u of urls) parseUrl(u);
    let first: unknown;
    for (const [i, url] of urls.entries()) {
      try {
        return await this.downloadOne(
          url,
          i === 0 ? req : { ...req, etag: undefined, lastModified: undefined },
        );
      } catch (e) {
        if (e instanceof FetchCacheError && (e.code === 'ERR_OFFLINE' || e.code === 'ERR_BAD_URL')) throw e;
        first ??= e;
      }
    }
    if (urls.length > 1 && first instanceof FetchCacheError) {
      throw new FetchCacheError(first.code, `${first.message} (and ${urls.length - 1} mirror(s) failed)`, {
        ...(first.path === undefined ? {} : { path: first.path }),
        cause: first,
      });
    }
    throw first;
  }

  private async downloadOne(url: string, req: DownloadRequest): Promise<Download> {
    const u = parseUrl(url);
    if (u.protocol === 'file:') return this.readFile(u, req);
    if (this.o.offline) {
      throw new FetchCacheError('ERR_OFFLINE', `offline mode: not downloading '${redactUrl(url)}'`, {
        path: redactUrl(url),
      });
    }
    const conditional: Record<string, string> = {};
    if (req.etag !== undefined) conditional['if-none-match'] = req.etag;
    if (req.lastModified !== undefined) conditional['if-modified-since'] = req.lastModified;
    const budget = { left: this.o.attempts };
    const opened = await this.openWithRetries(url, conditional, budget, req);
    const status = opened.res.statusCode;
    if (status === 304) {
      await this.discard(opened);
      return { notModified: true, url: opened.url };
    }
    const lengthText = header(opened.res, 'content-length');
    const size = lengthText === undefined ? undefined : Number(lengthText);
    if (size !== undefined && size > this.o.maxDownloadBytes) {
      await this.discard(opened);
      throw this.tooLarge(opened.url, `its Content-Length is ${size}`);
    }
    const codings = contentCodings(header(opened.res, 'content-encoding'));
    const unknown = codings.find((c) => !CONTENT_CODINGS.has(c));
    if (unknown !== undefined) {
      await this.discard(opened);
      throw httpError(
        `unsupported Content-Encoding '${unknown}' from '${redactUrl(opened.url)}'`,
        opened.url,
      );
    }
    return {
      notModified: false,
      url: opened.url,
      etag: header(opened.res, 'etag'),
      lastModified: header(opened.res, 'last-modified'),
      size,
      body: this.limited(
        decodeBody(this.body(opened, size, budget, req), codings, opened.url),
        codings,
        opened.url,
      ),
    };
  }

  private async readFile(u: URL, req: DownloadRequest): Promise<Download> {
    const path = fileURLToPath(u);
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      size = st.size;
    } catch (e) {
      throw new FetchCacheError('ERR_IO', `cannot read '${u.href}': ${describe(e)}`, { path, cause: e });
    }
    if (size > this.o.maxDownloadBytes) throw this.tooLarge(u.href, `it has ${size} bytes`);
    const progress = new ProgressMeter(size, req.onProgress);
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        // 1 MiB reads (the default is 64 KiB): fewer, larger pieces through the decoders and the store.
        for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
          progress.add((chunk as Buffer).length);
          yield chunk as Buffer;
        }
      } catch (e) {
        throw new FetchCacheError('ERR_IO', `cannot read '${u.href}': ${describe(e)}`, { path, cause: e });
      }
      progress.finish();
    }
    return { notModified: false, url: u.href, etag: undefined, lastModified: undefined, size, body: body() };
  }

  private tooLarge(url: string, why: string): FetchCacheError {
    return httpError(
      `download of '${redactUrl(url)}' exceeds the size limit of ${this.o.maxDownloadBytes} bytes (max-download-size): ${why}`,
      url,
    );
  }

  /** The decoded body, held to the size limit too (the body as received is, in `body`). */
  private limited(
    body: AsyncIterable<Uint8Array>,
    codings: string[],
    url: string,
  ): AsyncIterable<Uint8Array> {
    const max = this.o.maxDownloadBytes;
    if (codings.length === 0 || max === Number.POSITIVE_INFINITY) return body;
    const tooLarge = (n: number) => this.tooLarge(url, `it decodes to more than ${n - 1} bytes`);
    return (async function* () {
      let n = 0;
      for await (const chunk of body) {
        n += chunk.length;
        if (n > max) throw tooLarge(n);
        yield chunk;
      }
    })();
  }

  private backoff(attempt: number): Promise<void> {
    const base = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** (attempt - 1));
    return sleep(base / 2 + (Math.random() * base) / 2);
  }

  /** Open `url` (following redirects), retrying transient failures; a final non-2xx/304 is ERR_HTTP. */
  private async openWithRetries(
    url: string,
    headers: Record<string, string>,
    budget: { left: number },
    req: DownloadRequest,
  ): Promise<Opened> {
    for (let attempt = 1; ; attempt++) {
      budget.left--;
      let reason: string;
      let lastError: FetchCacheError;
      try {
        const opened = await this.open(url, headers);
        const status = opened.res.statusCode;
        if ((status >= 200 && status < 300) || status === 304) return opened;
        await this.discard(opened);
        // node:http is loaded by now (it made the request); a file:// fetch never loads it.
        const { STATUS_CODES } = await import('node:http');
        lastError = httpError(
          `HTTP error ${status} (${STATUS_CODES[status] ?? 'unknown'}) fetching '${redactUrl(opened.url)}'`,
          opened.url,
        );
        if (!retryableStatus(status)) throw lastError;
        reason = `HTTP ${status}`;
      } catch (e) {
        if (e instanceof FetchCacheError) throw e;
        lastError = httpError(`cannot fetch '${redactUrl(url)}': ${describe(e)}`, url, e);
        // A failure with an error code that will not go away (an untrusted certificate, a bad
        // argument) is an HTTP error at once; anything without a code is ours and propagates.
        if (!transientError(e)) throw typeof (e as { code?: unknown })?.code === 'string' ? lastError : e;
        reason = describe(e);
      }
      if (budget.left <= 0) throw lastError;
      req.onRetry?.({ url: redactUrl(url), attempt, reason, resumeAt: 0 });
      await this.backoff(attempt);
    }
  }

  /** One request, following up to `maxRedirects` redirects. Transport errors propagate raw. */
  private async open(url: string, headers: Record<string, string>): Promise<Opened> {
    let current = url;
    for (let hops = 0; ; hops++) {
      const u = new URL(current);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw httpError(`redirected to unsupported URL '${redactUrl(current)}'`, url);
      }
      const opened = await this.request(u, { 'user-agent': this.o.userAgent, ...headers });
      const res = opened.res;
      const location = header(res, 'location');
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && location !== undefined) {
        await this.discard(opened);
        if (hops >= this.o.maxRedirects) {
          throw httpError(
            `too many redirects (more than ${this.o.maxRedirects}) fetching '${redactUrl(url)}'`,
            url,
          );
        }
        current = new URL(location, current).href;
        continue;
      }
      return opened;
    }
  }

  /**
   * One GET on a connection of its own; resolves with the response head. Transport errors and timeouts
   * (connect, headers; later an idle body) reject raw, as Node gives them.
   */
  private async request(u: URL, headers: Record<string, string>): Promise<Opened> {
    const https = u.protocol === 'https:';
    const transport = https ? await import('node:https') : await import('node:http');
    const { auth: _auth, ...target } = urlToHttpOptions(u);
    return new Promise<Opened>((resolve, reject) => {
      let response: IncomingMessage | undefined;
      // Node takes `highWaterMark` here (its socket's and so the response's); its types do not list it.
      const options = { ...target, method: 'GET', headers, agent: false, highWaterMark: BODY_BUFFER };
      const req = transport.request(options);
      const opened: Opened = {
        url: u.href,
        trailing: undefined,
        res: undefined as never,
        close() {
          response?.destroy();
          req.destroy();
        },
      };
      const headersTimer = setTimeout(
        () => req.destroy(timeoutError(`no response headers within ${this.o.headersTimeoutMs} ms`)),
        this.o.headersTimeoutMs,
      );
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const connectTimer = setTimeout(
          () => req.destroy(timeoutError(`cannot connect within ${this.o.connectTimeoutMs} ms`)),
          this.o.connectTimeoutMs,
        );
        const connected = () => clearTimeout(connectTimer);
        socket.once(https ? 'secureConnect' : 'connect', connected);
        socket.once('close', connected);
      });
      req.on('error', (e: Error & { code?: string }) => {
        clearTimeout(headersTimer);
        if (response === undefined) reject(e);
        // After the response: bytes past its end fail the parser; anything else reaches the body itself.
        else if (e.code?.startsWith('HPE_')) opened.trailing ??= e;
      });
      req.once('response', (res: IncomingMessage) => {
        clearTimeout(headersTimer);
        response = res;
        res.socket.setTimeout(this.o.bodyTimeoutMs, () => {
          res.destroy(timeoutError(`no body data for ${this.o.bodyTimeoutMs} ms`));
        });
        resolve(
          Object.assign(opened, {
            res: { statusCode: res.statusCode ?? 0, headers: res.headers, body: res },
          }),
        );
      });
      req.end();
    });
  }

  /** Drop a response we do not read: its connection goes (reading the body out could take forever). */
  private async discard(opened: Opened): Promise<void> {
    opened.res.body.on('error', () => {});
    opened.close();
  }

  /**
   * The body of `first`, resuming after a dropped connection. `handed` counts
   * the bytes given to the consumer: a restart from 0 is only allowed while it
   * is 0, afterwards only a 206 continuing at `handed` is accepted.
   */
  private async *body(
    first: Opened,
    size: number | undefined,
    budget: { left: number },
    req: DownloadRequest,
  ): AsyncGenerator<Uint8Array> {
    const validator = strongValidator(first.res);
    const progress = new ProgressMeter(size, req.onProgress);
    let current = first;
    let handed = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const chunks = (current.res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
          const stall = new StallMeter(this.o.stalledDownloadTimeoutMs);
          for (;;) {
            const next = await stall.wait(chunks.next(), () => {
              const e = new StalledError(
                `transfer of '${redactUrl(current.url)}' stalled: fewer than ${this.o.stalledDownloadTimeoutMs / 1000} bytes in ${this.o.stalledDownloadTimeoutMs / 1000} s (stalled-download-timeout)`,
              );
              current.res.body.destroy(e);
              return e;
            });
            if (next.done) break;
            const chunk = next.value;
            stall.received(chunk.length);
            if (handed + chunk.length > this.o.maxDownloadBytes) {
              throw this.tooLarge(current.url, `more than ${this.o.maxDownloadBytes} bytes arrived`);
            }
            handed += chunk.length;
            if (size !== undefined && handed > size) {
              throw httpError(
                `body of '${redactUrl(current.url)}' is longer than its Content-Length ${size}`,
                current.url,
              );
            }
            progress.add(chunk.length);
            yield chunk;
          }
          if (size !== undefined && handed < size) {
            throw httpError(
              `body of '${redactUrl(current.url)}' ended after ${handed} of ${size} bytes (Content-Length)`,
              current.url,
            );
          }
          // Bytes after the declared end show up as a broken connection right after it.
          await sleep(5);
          if (current.trailing !== undefined) {
            throw httpError(
              `body of '${redactUrl(current.url)}' is longer than its Content-Length ${size ?? ''}`.trimEnd(),
              current.url,
              current.trailing,
            );
          }
          progress.finish();
          return;
        } catch (e) {
          if (e instanceof FetchCacheError || !transientError(e)) throw e;
          current.close();
          const what = `transfer of '${redactUrl(current.url)}' failed after ${handed}${size === undefined ? '' : ` of ${size}`} bytes: ${describe(e)}`;
          if (budget.left <= 0) throw httpError(what, current.url, e);
          req.onRetry?.({ url: redactUrl(current.url), attempt, reason: describe(e), resumeAt: handed });
          await this.backoff(attempt);
          if (handed === 0) {
            current = await this.restart(first.url, budget, req);
          } else {
            budget.left--;
            current = await this.resume(current.url, handed, size, validator, what);
          }
        }
      }
    } finally {
      current.close();
    }
  }

  private async restart(url: string, budget: { left: number }, req: DownloadRequest): Promise<Opened> {
    const opened = await this.openWithRetries(url, {}, budget, req);
    if (opened.res.statusCode !== 200) {
      await this.discard(opened);
      throw httpError(`restarting '${redactUrl(url)}' gave HTTP ${opened.res.statusCode}`, url);
    }
    return opened;
  }

  /** `Range: bytes=N-`; only a 206 starting at N (and of the same total size) continues the body. */
  private async resume(
    url: string,
    at: number,
    size: number | undefined,
    validator: string | undefined,
    what: string,
  ): Promise<Opened> {
    const headers: Record<string, string> = { range: `bytes=${at}-` };
    if (validator !== undefined) headers['if-range'] = validator;
    let opened: Opened;
    try {
      opened = await this.open(url, headers);
    } catch (e) {
      if (e instanceof FetchCacheError) throw e;
      throw httpError(`${what}; resuming failed: ${describe(e)}`, url, e);
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(opened.res, 'content-range') ?? '');
    const ok =
      opened.res.statusCode === 206 &&
      range !== null &&
      Number(range[1]) === at &&
      (size === undefined || range[3] === '*' || Number(range[3]) === size);
    if (!ok) {
      await this.discard(opened);
      throw httpError(
        `${what}; the server cannot resume it (HTTP ${opened.res.statusCode} to a Range request)`,
        url,
      );
    }
    return opened;
  }
}

/** The codings of a Content-Encoding header, in the order they were applied (`identity` dropped). */
function contentCodings(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

/**
 * The body with its content codings undone, last applied first, as curl and Nix hand it out (the hash is
 * of the decoded bytes). A body its coding cannot decode is ERR_HTTP; the body's own errors pass through.
 */
function decodeBody(
  body: AsyncIterable<Uint8Array>,
  codings: string[],
  url: string,
): AsyncIterable<Uint8Array> {
  if (codings.length === 0) return body;
  const failed: { error?: unknown } = {};
  async function* watched(): AsyncGenerator<Uint8Array> {
    try {
      yield* body;
    } catch (e) {
      failed.error = e;
      throw e;
    }
  }
  let out: AsyncIterable<Uint8Array> = watched();
  for (const coding of [...codings].reverse()) out = decodeContentCoding(coding, out)!;
  const decoded = out;
  return (async function* () {
    try {
      yield* decoded;
    } catch (e) {
      if ('error' in failed && e === failed.error) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw httpError(
        `cannot decode the body of '${redactUrl(url)}' (Content-Encoding: ${codings.join(', ')}): ${why}`,
        url,
        e,
      );
    }
  })();
}

/** `If-Range` needs a strong validator: a non-weak ETag, else Last-Modified. */
function strongValidator(res: Response): string | undefined {
  const etag = header(res, 'etag');
  if (etag !== undefined && !etag.startsWith('W/')) return etag;
  return header(res, 'last-modified');
}

/** Counts bytes and reports at most every 100 ms, plus once at the end. */
class ProgressMeter {
  private bytes = 0;
  private readonly start = Date.now();
  private last = 0;

  constructor(
    private readonly total: number | undefined,
    private readonly report: ((p: DownloadProgress) => void) | undefined,
  ) {}

  add(n: number): void {
    this.bytes += n;
    const now = Date.now();
    if (this.report && now - this.last >= 100) {
      this.last = now;
      this.emit(false);
    }
  }

  finish(): void {
    this.emit(true);
  }

  private emit(done: boolean): void {
    const seconds = (Date.now() - this.start) / 1000;
    this.report?.({
      bytes: this.bytes,
      total: this.total,
      rate: seconds > 0 ? this.bytes / seconds : 0,
      done,
    });
  }
}

/** A transfer that moved too little for too long (retried like a dropped connection). */
class StalledError extends Error {
  override readonly name = 'StalledError';
}

/**
 * Nix's `stalled-download-timeout` (curl's LOW_SPEED_LIMIT 1 byte/s over LOW_SPEED_TIME): fails a transfer
 * once fewer than `windowMs / 1000` bytes arrived in the last `windowMs` of waiting for it. Only time spent
 * waiting for the server counts, not time the consumer holds a chunk (a slow disk is no stalled server).
 * Samples of (waited ms, bytes) are kept at least 1/50 of the window apart and each is exact, so the
 * count in the window is never underestimated: it fails at most one sample step late, never early.
 */
class StallMeter {
  /** Milliseconds spent waiting so far: the meter's clock. */
  private clock = 0;
  private bytes = 0;
  private readonly marks: [clock: number, bytes: number][] = [[0, 0]];
  private readonly step: number;
  private readonly needed: number;

  constructor(private readonly windowMs: number) {
    this.step = Math.max(windowMs / 50, 10);
    this.needed = Math.max(1, windowMs / 1000);
  }

  received(n: number): void {
    this.bytes += n;
    const m = this.marks;
    if (m.length >= 2 && this.clock - m[m.length - 2]![0] < this.step)
      m[m.length - 1] = [this.clock, this.bytes];
    else m.push([this.clock, this.bytes]);
    // Keep one mark at or before the start of the window.
    while (m.length > 2 && m[1]![0] <= this.clock - this.windowMs) m.shift();
  }

  /** `pending`, or the error `stalled()` makes once the window fails while we wait for it. */
  async wait<T>(pending: Promise<T>, stalled: () => Error): Promise<T> {
    if (this.windowMs <= 0) return pending;
    // The first sample with more than `bytes - needed` bytes: once the window starts after it, it fails.
    const first = this.marks.find(([, b]) => b > this.bytes - this.needed)!;
    const failAt = Math.max(this.windowMs, first[0] + this.windowMs);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(stalled()), Math.max(0, failAt - this.clock));
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
      pending.catch(() => {});
      this.clock += performance.now() - started;
    }
  }
}
