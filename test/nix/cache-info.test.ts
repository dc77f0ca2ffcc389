/**
 * `nix-cache-info` against the Nix manual example, the file Nix 2.8 writes when
 * a cache has none, and nar-bridge's template; plus Nix's lenient reading
 * (first-colon split, trimmed values, unknown keys and colon-less lines).
 */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatNixCacheInfo, parseNixCacheInfo } from '../../src/nix/cache-info.js';

const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/narinfo.json', import.meta.url), 'utf8'),
) as {
  nixCacheInfo: [{ text: string }, { text: string }, { text: string }];
};
const [manual, nix28, narBridge] = fixtures.nixCacheInfo;

describe('nix-cache-info', () => {
  it('parses and reproduces the Nix manual example', () => {
    expect(parseNixCacheInfo(manual.text)).toEqual({
      storeDir: '/nix/store',
      wantMassQuery: true,
      priority: 30,
      other: [],
    });
    expect(formatNixCacheInfo({ storeDir: '/nix/store', wantMassQuery: true, priority: 30 })).toBe(
      manual.text,
    );
  });

  it('writes the file Nix 2.8 creates when a cache has none', () => {
    expect(formatNixCacheInfo()).toBe(nix28.text);
    expect(parseNixCacheInfo(nix28.text)).toEqual({ storeDir: '/nix/store', other: [] });
  });

  it("writes nar-bridge's layout", () => {
    expect(formatNixCacheInfo({ wantMassQuery: true, priority: 40 })).toBe(
      narBridge.text.replace('{priority}', '40'),
    );
  });

  it('reads like Nix: first colon, trimmed values, later lines win, junk skipped', () => {
    const info = parseNixCacheInfo(
      'no colon here\nStoreDir:/gnu/store  \r\nWantMassQuery: 0\nX-Thing: a:b\nPriority:  41 \nPriority: 42\n\n',
    );
    expect(info).toEqual({
      storeDir: '/gnu/store',
      wantMassQuery: false,
      priority: 42,
      other: [['X-Thing', 'a:b']],
    });
  });

  it('only `1` turns WantMassQuery on', () => {
    expect(parseNixCacheInfo('WantMassQuery: true\n').wantMassQuery).toBe(false);
    expect(parseNixCacheInfo('WantMassQuery: 1').wantMassQuery).toBe(true);
  });

  it('reads Priority like std::stoi and ignores values Nix would fail on', () => {
    expect(parseNixCacheInfo('Priority: 40abc\n').priority).toBe(40);
    expect(parseNixCacheInfo('Priority: -5\n').priority).toBe(-5);
    expect(parseNixCacheInfo('Priority: abc\n').priority).toBeUndefined();
    expect(parseNixCacheInfo('Priority: 99999999999\n').priority).toBeUndefined();
  });

  it('writes WantMassQuery: 0 and refuses a non-integer priority', () => {
    expect(formatNixCacheInfo({ wantMassQuery: false })).toBe('StoreDir: /nix/store\nWantMassQuery: 0\n');
    expect(() => formatNixCacheInfo({ priority: 1.5 })).toThrow(TypeError);
  });
});
