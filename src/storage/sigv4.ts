/**
 * AWS Signature Version 4, header form: the `Authorization` value that
 * S3-compatible object stores check on every request (s3.ts). Written here with
 * node:crypto because the store needs only this: an SDK would bring dozens of
 * packages for the same ~9 calls. The three steps are exported separately
 * (canonical request → string to sign → authorization) so that each can be
 * checked against Amazon's published test vectors (fixtures/sigv4/).
 *
 * Paths are signed as sent, each segment percent-encoded once (S3's rule: no
 * removal of `.`/`..` or repeated slashes, unlike other AWS services), and the
 * caller sends exactly `encodePath(path)`. Every header handed in is signed.
 */

import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Temporary credentials (AWS STS) carry a token, sent and signed as `x-amz-security-token`. */
  readonly sessionToken?: string | undefined;
}

export interface SignableRequest {
  readonly method: string;
  /** The path, not percent-encoded (encodePath gives the form to send). */
  readonly path: string;
  /** Query parameters, not percent-encoded, in any order. */
  readonly query: readonly (readonly [string, string])[];
  /** Every header to sign (names in any case; a repeated name is allowed). Must include `host`. */
  readonly headers: readonly (readonly [string, string])[];
  /** Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  readonly payloadHash: string;
}

export interface Scope {
  readonly region: string;
  readonly service: string;
  /** The request time as `YYYYMMDDTHHMMSSZ`, the same string as the `x-amz-date` header. */
  readonly amzDate: string;
}

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** `date` as the `x-amz-date` header wants it: `20150830T123600Z`. */
export function amzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - _ . ~` (and `/` when `keepSlash`). */
export function uriEncode(s: string, keepSlash = false): string {
  const e = encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return keepSlash ? e.replaceAll('%2F', '/') : e;
}

/** The path as it is sent and signed. */
export function encodePath(path: string): string {
  return uriEncode(path, true);
}

/** The query string as it is sent and signed (sorted, encoded), without `?`. */
export function encodeQuery(query: readonly (readonly [string, string])[]): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function canonicalHeaders(headers: SignableRequest['headers']): { text: string; signed: string } {
  const byName = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    const v = value.trim().replace(/\s+/g, ' ');
    const list = byName.get(n);
    if (list === undefined) byName.set(n, [v]);
    else list.push(v);
  }
  const names = [...byName.keys()].sort();
  return {
    text: names.map((n) => `${n}:${byName.get(n)!.join(',')}\n`).join(''),
    signed: names.join(';'),
  };
}

function canonical(r: SignableRequest): { text: string; signed: string } {
  const h = canonicalHeaders(r.headers);
  const text = [r.method, encodePath(r.path), encodeQuery(r.query), h.text, h.signed, r.payloadHash].join(
    '\n',
  );
  return { text, signed: h.signed };
}

export function canonicalRequest(r: SignableRequest): string {
  return canonical(r).text;
}

function credentialScope(s: Scope): string {
  return `${s.amzDate.slice(0, 8)}/${s.region}/${s.service}/aws4_request`;
}

export function stringToSign(canonical: string, s: Scope): string {
  return ['AWS4-HMAC-SHA256', s.amzDate, credentialScope(s), sha256Hex(canonical)].join('\n');
}

const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** The derived key changes once a day per region and service: the last one is kept. */
let lastKey: { id: string; key: Buffer } | undefined;

function signingKey(secret: string, s: Scope): Buffer {
  const id = `${secret}\n${credentialScope(s)}`;
  if (lastKey?.id !== id) {
    const k = hmac(
      hmac(hmac(hmac(`AWS4${secret}`, s.amzDate.slice(0, 8)), s.region), s.service),
      'aws4_request',
    );
    lastKey = { id, key: k };
  }
  return lastKey.key;
}

/** The `Authorization` header value for `r` (whose headers must already hold `x-amz-date`, and the token if any). */
export function authorization(r: SignableRequest, s: Scope, c: Credentials): string {
  const { text, signed } = canonical(r);
  const signature = createHmac('sha256', signingKey(c.secretAccessKey, s))
    .update(stringToSign(text, s))
    .digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${c.accessKeyId}/${credentialScope(s)}, SignedHeaders=${signed}, Signature=${signature}`;
}
