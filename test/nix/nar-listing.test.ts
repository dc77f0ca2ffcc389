/**
 * NAR listings (`.ls`) built from parser events against the listings Nix 2.8
 * wrote for known NARs and snix's `nixos-release.ls` (whose 1 GiB NAR is
 * re-created here from its shape: offsets depend only on names and sizes).
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FetchCacheError } from '../../src/errors.js';
import { NarEncoder } from '../../src/nix/nar/encoder.js';
import { NarListingBuilder, narListing, renderNarListing } from '../../src/nix/nar/listing.js';
import { NarParser, parseNar } from '../../src/nix/nar/parser.js';

interface NarVector {
  name: string;
  narBase64?: string;
}
interface ListingVector {
  name: string;
  json: string;
}
const fixtures = JSON.parse(readFileSync(new URL('../../fixtures/nar.json', import.meta.url), 'utf8')) as {
  nar: NarVector[];
  narListing: ListingVector[];
};
const narOf = (name: string) =>
  new Uint8Array(Buffer.from(fixtures.nar.find((v) => v.name === name)!.narBase64!, 'base64'));
const listingOf = (name: string) => fixtures.narListing.find((v) => v.name === name)!.json;

const events = parseNar;

describe('narListing', () => {
  it('matches Nix 2.8 for a single regular file', () => {
    const listing = narListing(events(narOf('regular-hello-5-bytes')));
    expect(listing).toEqual(JSON.parse(listingOf("nix-2.8 .ls for regular file 'hello'")));
  });

  it('matches Nix 2.8 for the mixed directory (executable, symlink, nested, empty file)', () => {
    const listing = narListing(events(narOf('mixed-dir-nix-2.8')));
    expect(listing).toEqual(JSON.parse(listingOf('nix-2.8 .ls for mixed-dir-nix-2.8')));
  });

  it("reproduces snix's nixos-release.ls byte for byte from a streamed 1 GiB NAR", () => {
    const builder = new NarListingBuilder();
    const parser = new NarParser();
    const enc = new NarEncoder((chunk) => {
      for (const e of parser.push(chunk)) builder.add(e);
    });
    const zeros = new Uint8Array(4 * 1024 * 1024);
    const file = (size: number) => {
      enc.regular(false, size);
      for (let left = size; left > 0; left -= zeros.length)
        enc.contents(zeros.subarray(0, Math.min(left, zeros.length)));
    };
    enc.directory();
    enc.entry('iso');
    enc.directory();
    enc.entry('nixos-minimal-new-kernel-no-zfs-24.11pre660688.bee6b69aad74-x86_64-linux.iso');
    file(1051721728);
    enc.end();
    enc.entry('nix-support');
    enc.directory();
    enc.entry('hydra-build-products');
    file(211);
    enc.entry('system');
    file(13);
    enc.end();
    enc.end();
    enc.finish();
    parser.end();
    expect(renderNarListing(builder.result())).toBe(listingOf('nixos-release.ls'));
  });

  it('renders keys sorted by UTF-8 bytes and keeps odd names as own keys', () => {
    const enc: Uint8Array[] = [];
    const e = new NarEncoder((c) => enc.push(c));
    e.directory();
    for (const name of ['__proto__', 'a"b', '\uFF5E', '\u{1F600}']) {
      e.entry(name);
      e.symlink(`to ${name}`);
    }
    e.end();
    e.finish();
    const listing = narListing(events(new Uint8Array(Buffer.concat(enc))));
    const root = listing.root;
    expect(root.type === 'directory' && Object.keys(root.entries)).toEqual([
      '__proto__',
      'a"b',
      '\uFF5E',
      '\u{1F600}',
    ]);
    expect(Object.getPrototypeOf(root.type === 'directory' && root.entries)).toBe(Object.prototype);
    const text = renderNarListing(listing);
    expect(JSON.parse(text)).toEqual(listing);
    expect(text.indexOf('\uFF5E')).toBeLessThan(text.indexOf('\u{1F600}'));
  });

  it('refuses names that are not UTF-8 with ERR_BAD_NAR', () => {
    const enc: Uint8Array[] = [];
    const e = new NarEncoder((c) => enc.push(c));
    e.directory();
    e.entry(new Uint8Array([0xff, 0xfe]));
    e.symlink('x');
    e.end();
    e.finish();
    const evs = events(new Uint8Array(Buffer.concat(enc)));
    expect(() => narListing(evs)).toThrow(FetchCacheError);
    expect(() => narListing(evs)).toThrow(/not valid UTF-8/);
  });

  it('refuses incomplete event streams', () => {
    expect(() => narListing([])).toThrow(TypeError);
    expect(() => narListing([{ type: 'directory', path: [] }])).toThrow(TypeError);
  });
});
