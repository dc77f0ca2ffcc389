/**
 * CA strings against real narinfo CA fields and Nix's path-info JSON
 * (fixtures/content-address.json), and the store paths they imply
 * (fixtures/store-paths.json entries that carry a `ca`).
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type ContentAddress,
  contentAddressFromJson,
  contentAddressToJson,
  formatContentAddress,
  isContentAddressedPath,
  parseContentAddress,
  parseContentAddressOpt,
  storePathForContentAddress,
} from '../../src/nix/content-address.js';
import { formatHash, hashOf, toBase16 } from '../../src/nix/hash.js';
import type { HashAlgo } from '../../src/nix/hashing.js';
import { formatStorePath } from '../../src/nix/store-path.js';

interface CaVector {
  ca: string;
  method: ContentAddress['method'];
  algo: HashAlgo;
  hashHex: string;
  json?: { method: string; hash: string };
}
interface PathVector {
  name: string;
  ca?: string;
  references: string[];
  selfReference?: boolean;
  expected: string;
}

const caFixture = JSON.parse(
  readFileSync(new URL('../../fixtures/content-address.json', import.meta.url), 'utf8'),
) as {
  caField: CaVector[];
};
const pathFixture = JSON.parse(
  readFileSync(new URL('../../fixtures/store-paths.json', import.meta.url), 'utf8'),
) as {
  storePaths: PathVector[];
};

function badCa(fn: () => unknown): void {
  expect(fn).toThrow(expect.objectContaining({ code: 'ERR_BAD_CA' }));
}

describe('CA strings (real narinfo fields)', () => {
  for (const v of caFixture.caField) {
    it(`parses and re-renders ${v.ca}`, () => {
      const ca = parseContentAddress(v.ca);
      expect(ca.method).toBe(v.method);
      expect(ca.hash.algo).toBe(v.algo);
      expect(toBase16(ca.hash.digest)).toBe(v.hashHex);
      expect(formatContentAddress(ca)).toBe(v.ca);
      if (v.json !== undefined) {
        expect(contentAddressToJson(ca)).toEqual(v.json);
        expect(formatContentAddress(contentAddressFromJson(v.json))).toBe(v.ca);
      }
    });

    it(`accepts the digest of ${v.ca} in base16 and base64 too`, () => {
      const ca = parseContentAddress(v.ca);
      const head = v.ca.slice(0, v.ca.lastIndexOf(':') + 1);
      expect(formatContentAddress(parseContentAddress(head + formatHash(ca.hash, 'base16')))).toBe(v.ca);
      expect(formatContentAddress(parseContentAddress(head + formatHash(ca.hash, 'base64')))).toBe(v.ca);
    });
  }

  it('renders git CAs as fixed:git:', () => {
    const hash = hashOf('sha1', 'x');
    const s = formatContentAddress({ method: 'git', hash });
    expect(s).toBe(`fixed:git:${formatHash(hash, 'nix32', { prefix: true })}`);
    expect(parseContentAddress(s).method).toBe('git');
  });

  it('treats the empty string as "no CA" only in parseContentAddressOpt', () => {
    expect(parseContentAddressOpt('')).toBeUndefined();
    badCa(() => parseContentAddress(''));
  });

  for (const bad of [
    'sha256:1ih27mgqfzjlas97rvj18s8j3p0bpwb03vr71yrq776vzv1v6fcs',
    'fixed',
    'fixed:sha256',
    'fixed:sha384:1ih27mgqfzjlas97rvj18s8j3p0bpwb03vr71yrq776vzv1v6fcs',
    'fixed:r:sha256:1ih27mgqfzjlas97rvj18s8j3p0bpwb03vr71yrq776vzv1v6fc',
    'fixed:sha256-mjnGY8ZHVjxZD/dYKE8nS6pCzEwHu9X3HHt5ePaPQ6s=',
    'fixed:sha256:sha256-mjnGY8ZHVjxZD/dYKE8nS6pCzEwHu9X3HHt5ePaPQ6s=',
    'source:sha256:1ih27mgqfzjlas97rvj18s8j3p0bpwb03vr71yrq776vzv1v6fcs',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => badCa(() => parseContentAddress(bad)));
  }

  it('rejects malformed JSON forms', () => {
    badCa(() =>
      contentAddressFromJson({
        method: 'recursive',
        hash: 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
      }),
    );
    badCa(() => contentAddressFromJson({ method: 'nar', hash: 'sha256:abc' }));
    badCa(() => contentAddressFromJson(null));
  });
});

describe('store paths implied by CA fields', () => {
  for (const v of pathFixture.storePaths.filter((x) => x.ca !== undefined)) {
    it(`${v.ca} + ${v.name} → ${v.expected}`, () => {
      const ca = parseContentAddress(v.ca!);
      const sp = storePathForContentAddress(v.name, ca, v.references, undefined, {
        self: v.selfReference === true,
      });
      expect(formatStorePath(sp)).toBe(v.expected);
      // As a narinfo would record it: a self-reference is the path itself among the references.
      const recorded = v.selfReference === true ? [...v.references, v.expected] : v.references;
      expect(isContentAddressedPath(v.expected, ca, recorded)).toBe(true);
      expect(isContentAddressedPath(v.expected, ca, [])).toBe(
        v.references.length === 0 && v.selfReference !== true,
      );
    });
  }

  it('text CAs must be sha256 and cannot refer to themselves', () => {
    badCa(() => storePathForContentAddress('x', { method: 'text', hash: hashOf('sha1', '') }, []));
    badCa(() =>
      storePathForContentAddress('x', { method: 'text', hash: hashOf('sha256', '') }, [], undefined, {
        self: true,
      }),
    );
  });

  it('a flat CA with references is not content-addressed', () => {
    const ca = parseContentAddress('fixed:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic');
    const path = '/nix/store/3fhdhfqli6qm669f7sz8d8v6xz24zrqc-hello';
    expect(isContentAddressedPath(path, ca, [])).toBe(true);
    expect(isContentAddressedPath(path, ca, ['/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar'])).toBe(false);
    expect(isContentAddressedPath('/nix/store/3fhdhfqli6qm669f7sz8d8v6xz24zrqc-hellp', ca, [])).toBe(false);
  });
});
