/**
 * narinfo parsing and writing against real narinfos (cache.nixos.org via
 * go-nix/nix-compat fixtures, Nix 2.8 `nix copy --to file://` output, the Nix
 * manual example): verbatim round trip, typed fields, Nix's writer layout,
 * Nix's corruption checks, and adding Sig lines without touching the rest.
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { parseAnyPrefixedHash, toNix32Prefixed } from '../../src/nix/hash.js';
import {
  addSignatures,
  formatNarInfo,
  formatNarInfoNixOrder,
  type NarInfoFields,
  parseNarInfo,
} from '../../src/nix/narinfo.js';

interface NarInfoVector {
  name: string;
  text: string;
  fingerprint: string;
  origin?: string;
}

const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/narinfo.json', import.meta.url), 'utf8'),
) as {
  narinfo: NarInfoVector[];
  narinfoDocExample: { text: string };
};

function vector(prefix: string): NarInfoVector {
  const v = fixtures.narinfo.find((e) => e.name.startsWith(prefix));
  if (v === undefined) throw new Error(`no narinfo vector ${prefix}`);
  return v;
}

function expectBadNarInfo(text: string, message: RegExp): void {
  let caught: unknown;
  try {
    parseNarInfo(text);
  } catch (e) {
    caught = e;
  }
  expect(isFetchCacheError(caught, 'ERR_BAD_NARINFO'), String(caught)).toBe(true);
  expect((caught as Error).message).toMatch(message);
  expect((caught as Error).message).not.toContain('\n');
}

const netTools = vector('net-tools').text;

describe('parseNarInfo on real narinfos', () => {
  it.each(fixtures.narinfo.map((v) => [v.name, v.text]))('%s round-trips byte for byte', (_name, text) => {
    const info = parseNarInfo(text);
    expect(formatNarInfo(info)).toBe(text);
    expect(info.lines.map((l) => `${l.key}: ${l.value}\n`).join('')).toBe(text);
  });

  it('parses the Nix manual example', () => {
    const { text } = fixtures.narinfoDocExample;
    const info = parseNarInfo(text);
    expect(formatNarInfo(info)).toBe(text);
    expect(info.url).toBe(
      'nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz?sha256=1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3',
    );
    expect(info.references).toEqual([
      'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar',
      'n5wkd9frr45pa74if5gpz9j7mifg27fh-foo',
    ]);
    expect(info.sigs).toHaveLength(2);
    expect(info.ca).toBe('fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh');
  });

  it('reads the typed fields of net-tools', () => {
    const info = parseNarInfo(netTools);
    expect(info.storePath).toBe('/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432');
    expect(info.url).toBe('nar/1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d.nar.xz');
    expect(info.compression).toBe('xz');
    expect(toNix32Prefixed(info.fileHash!)).toBe(
      'sha256:1094wph9z4nwlgvsd53abfz8i117ykiv5dwnq9nnhz846s7xqd7d',
    );
    expect(info.fileSize).toBe(114980);
    expect(toNix32Prefixed(info.narHash)).toBe('sha256:0lxjvvpr59c2mdram7ympy5ay741f180kv3349hvfc3f8nrmbqf6');
    expect(info.narSize).toBe(464152);
    expect(info.references).toEqual(['7gx4kiv5m0i7d7qkixq2cwzbr10lvxwc-glibc-2.27']);
    expect(info.deriver).toBe('10dx1q4ivjb115y3h90mipaaz533nr0d-net-tools-1.60_p20170221182432.drv');
    expect(info.sigs.map((s) => s.slice(0, s.indexOf(':')))).toEqual([
      'cache.nixos.org-1',
      'hydra.other.net-1',
    ]);
    expect(info.system).toBeUndefined();
    expect(info.ca).toBeUndefined();
    expect(info.unknown).toEqual([]);
  });

  it('reads a hex NarHash (old caches) as the same digest as its nix32 form', () => {
    const info = parseNarInfo(vector('perl-HTTP-Cookies').text);
    expect(toNix32Prefixed(info.narHash)).toBe('sha256:1wsgz5cbawm6ifh59ccixw4n717wng5n6wp4sxyav0ad78lzvbb0');
  });

  it('keeps legacy unsorted References in file order', () => {
    const info = parseNarInfo(vector('gcc-3.4.6').text);
    expect(info.references[0]).toBe('a8922c0h87iilxzzvwn2hmv8x210aqb9-glibc-2.7');
    expect(info.references[1]).toBe('7w2acjgalb0cm7b3bg8yswza4l7iil9y-binutils-2.18');
  });

  it('reads System, CA, an absent References line and a URL with a query', () => {
    expect(parseNarInfo(vector('r-MixGHD').text).system).toBe('x86_64-linux');
    expect(parseNarInfo(vector('texlive-hyphenex').text).ca).toBe(
      'fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw',
    );
    const cfgIf = parseNarInfo(vector('cfg-if').text);
    expect(cfgIf.references).toEqual([]);
    expect(cfgIf.compression).toBe('none');
    expect(cfgIf.url).toBe(
      'nar/0lxxfhy5fmfz0sbnqkqjdf7gx9gsxrfzz49n19y8sr93inawhshh.nar?hash=64s9zav4fk5qiba1jq0ipvyhnn57r7dq',
    );
  });

  it('defaults Compression to bzip2 when absent or empty, and drops unknown-deriver', () => {
    const noCompression = netTools.replace('Compression: xz\n', '');
    expect(parseNarInfo(noCompression).compression).toBe('bzip2');
    expect(formatNarInfo(parseNarInfo(noCompression))).toBe(noCompression);
    expect(parseNarInfo(netTools.replace('Compression: xz\n', 'Compression: \n')).compression).toBe('bzip2');
    const unknownDeriver = netTools.replace(/Deriver: .*\n/, 'Deriver: unknown-deriver\n');
    const info = parseNarInfo(unknownDeriver);
    expect(info.deriver).toBeUndefined();
    expect(formatNarInfo(info)).toBe(unknownDeriver);
  });

  it('keeps unknown keys aside and in place', () => {
    const text = netTools.replace('URL: ', 'X-Custom: a: b\nURL: ');
    const info = parseNarInfo(text);
    expect(info.unknown).toEqual([['X-Custom', 'a: b']]);
    expect(formatNarInfo(info)).toBe(text);
  });

  it('accepts an SRI NarHash like C++ Nix (parseAnyPrefixed)', () => {
    const sri = 'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=';
    const info = parseNarInfo(netTools.replace(/NarHash: .*\n/, `NarHash: ${sri}\n`));
    expect(toNix32Prefixed(info.narHash)).toBe('sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s');
  });
});

describe('parseNarInfo rejects what Nix rejects', () => {
  const cases: [string, string, RegExp][] = [
    ['missing StorePath', netTools.replace(/StorePath: .*\n/, ''), /StorePath missing/],
    ['missing NarHash', netTools.replace(/NarHash: .*\n/, ''), /NarHash missing/],
    ['missing URL', netTools.replace(/URL: .*\n/, ''), /URL missing/],
    ['missing NarSize', netTools.replace(/NarSize: .*\n/, ''), /NarSize missing or zero/],
    ['NarSize 0', netTools.replace(/NarSize: .*\n/, 'NarSize: 0\n'), /NarSize missing or zero/],
    ['non-numeric NarSize', netTools.replace(/NarSize: .*\n/, 'NarSize: 12a\n'), /invalid NarSize at line 7/],
    ['negative FileSize', netTools.replace(/FileSize: .*\n/, 'FileSize: -1\n'), /invalid FileSize/],
    ['no final newline', netTools.slice(0, -1), /expecting '\\n' at line 11/],
    [
      'duplicate References',
      netTools.replace('References: ', 'References: \nReferences: '),
      /extra References/,
    ],
    [
      'duplicate CA',
      `${vector('texlive-hyphenex').text}CA: fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw\n`,
      /extra CA/,
    ],
    ['bad NarHash', netTools.replace('NarHash: sha256:0lxj', 'NarHash: sha256:0lxe'), /bad NarHash/],
    ['NarHash without algorithm', netTools.replace('NarHash: sha256:', 'NarHash: '), /bad NarHash/],
    ['NarHash of wrong length', netTools.replace('NarHash: sha256:0', 'NarHash: sha256:'), /bad NarHash/],
    ['bad FileHash', netTools.replace('FileHash: sha256:', 'FileHash: sha257:'), /bad FileHash/],
    ['no space after colon', netTools.replace('URL: ', 'URL:'), /expecting ': '/],
    ['line without colon', netTools.replace('URL: ', 'URL '), /expecting ':' at line 2/],
    ['empty line', netTools.replace('URL: ', '\nURL: '), /expecting ':' at line 2/],
    ['bad reference', netTools.replace('References: 7gx4', 'References: 7gx_'), /bad reference/],
    ['bad Deriver', netTools.replace('Deriver: 10dx', 'Deriver: 10d'), /bad Deriver/],
    [
      'StorePath outside the store',
      netTools.replace('/nix/store/00bgd', '/gnu/store/00bgd'),
      /bad StorePath/,
    ],
    ['StorePath subpath', netTools.replace('182432\nURL', '182432/bin\nURL'), /bad StorePath/],
  ];
  it.each(cases)('%s', (_name, text, message) => expectBadNarInfo(text, message));

  it('checks StorePath against a custom store dir', () => {
    const text = netTools.replace('/nix/store/00bgd', '/gnu/store/00bgd');
    expect(parseNarInfo(text, { storeDir: '/gnu/store' }).storePath).toMatch(/^\/gnu\/store\//);
  });
});

describe('Nix writer layout', () => {
  const nix28 = fixtures.narinfo.filter((v) => v.origin === 'nix-2.8.0-generated');

  it('has the Nix 2.8 `nix copy` vectors', () => {
    expect(nix28.length).toBe(2);
  });

  it.each(nix28.map((v) => [v.name, v.text]))('regenerates %s exactly from its fields', (_name, text) => {
    const p = parseNarInfo(text);
    const fields: NarInfoFields = {
      storePath: p.storePath,
      url: p.url,
      compression: p.compression,
      fileHash: p.fileHash!,
      fileSize: p.fileSize!,
      narHash: p.narHash,
      narSize: p.narSize,
      references: [],
      sigs: p.sigs,
      ca: p.ca!,
    };
    expect(formatNarInfo(fields)).toBe(text);
    expect(formatNarInfoNixOrder(p)).toBe(text);
  });

  it('writes a narinfo built by hand like Nix (trailing space on empty References, nix32 hashes)', () => {
    const narHash = parseAnyPrefixedHash(
      'sha256:60adfd293a4d81ad7cd7e47263cbb3fc846309ef91b154a08ba672b558f94ff3',
    );
    const text = formatNarInfo({
      storePath: '/nix/store/0vpqfxbkx0ffrnhbws6g9qwhmliksz7f-perl-HTTP-Cookies-6.01',
      url: 'nar/x.nar',
      compression: 'none',
      narHash,
      narSize: 45840,
      references: [],
      sigs: ['b:AA==', 'a:AA==', 'b:AA=='],
    });
    expect(text).toBe(
      'StorePath: /nix/store/0vpqfxbkx0ffrnhbws6g9qwhmliksz7f-perl-HTTP-Cookies-6.01\n' +
        'URL: nar/x.nar\n' +
        'Compression: none\n' +
        'NarHash: sha256:1wsgz5cbawm6ifh59ccixw4n717wng5n6wp4sxyav0ad78lzvbb0\n' +
        'NarSize: 45840\n' +
        'References: \n' +
        'Sig: a:AA==\n' +
        'Sig: b:AA==\n',
    );
  });

  it('sorts References and puts Deriver and System before Sig (Hydra order) for real cache narinfos', () => {
    for (const prefix of ['net-tools', 'curl', 'regrrr', 'help2man', 'r-MixGHD', 'digikam', 'widestring']) {
      const text = vector(prefix).text;
      expect(formatNarInfoNixOrder(parseNarInfo(text)), prefix).toBe(text);
    }
    const gcc = parseNarInfo(vector('gcc-3.4.6').text);
    expect(formatNarInfoNixOrder(gcc)).toContain(
      'References: 7w2acjgalb0cm7b3bg8yswza4l7iil9y-binutils-2.18 a8922c0h87iilxzzvwn2hmv8x210aqb9-glibc-2.7 ',
    );
  });
});

describe('addSignatures', () => {
  it('appends after the last existing Sig line', () => {
    const info = addSignatures(parseNarInfo(netTools), ['new-1:AAAA']);
    expect(formatNarInfo(info)).toBe(`${netTools}Sig: new-1:AAAA\n`);
    expect(info.sigs).toHaveLength(3);
  });

  it('inserts before CA when there is no Sig, and leaves other lines untouched', () => {
    const original = vector('regrrr').text;
    const unsigned = original.replace(/Sig: .*\n/, '');
    const info = addSignatures(parseNarInfo(unsigned), ['k:AA==', 'j:AA==']);
    expect(formatNarInfo(info)).toBe(unsigned.replace('CA: ', 'Sig: k:AA==\nSig: j:AA==\nCA: '));
  });

  it('appends at the end when there is neither Sig nor CA, and skips signatures already present', () => {
    const unsigned = netTools.replace(/Sig: .*\n/g, '');
    const once = addSignatures(parseNarInfo(unsigned), ['k:AA==']);
    expect(formatNarInfo(once)).toBe(`${unsigned}Sig: k:AA==\n`);
    const twice = addSignatures(once, ['k:AA==']);
    expect(formatNarInfo(twice)).toBe(`${unsigned}Sig: k:AA==\n`);
    expect(twice.sigs).toEqual(['k:AA==']);
  });

  it('does not change the narinfo it was given', () => {
    const info = parseNarInfo(netTools);
    addSignatures(info, ['k:AA==']);
    expect(formatNarInfo(info)).toBe(netTools);
  });
});
