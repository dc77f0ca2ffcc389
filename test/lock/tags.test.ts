/**
 * Tag selection for tag-tracking pins: the newest tag in a semver range,
 * with prefixes, short versions, prereleases only when asked for, annotated
 * tags' `^{}` lines ignored, and a deterministic winner whatever the order.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newestTag, tagVersion } from '../../src/lock/tags.js';

const refs = (...tags: string[]) => tags.map((t) => `refs/tags/${t}`);

describe('newestTag', () => {
  const all = refs(
    'v0.9.0',
    'v1.0.0',
    'v1.2.0',
    'v1.2.5',
    'v1.3.0-rc.1',
    'v2.0.0',
    '1.9.0',
    'latest',
    'v1.10.0^{}',
  );
  it('picks the newest in range, by semver not by string order', () => {
    expect(newestTag([...all, 'refs/tags/v1.10.0'], { range: '^1.2', prefix: 'v' })).toEqual({
      tag: 'v1.10.0',
      version: '1.10.0',
    });
    expect(newestTag(all, { range: '^1.2', prefix: 'v' })?.tag).toBe('v1.2.5');
    expect(newestTag(all, { range: '*', prefix: 'v' })?.tag).toBe('v2.0.0');
    expect(newestTag(all, { range: '*' })?.tag).toBe('1.9.0');
    expect(newestTag(all, { range: '~1.2', prefix: 'v' })?.tag).toBe('v1.2.5');
    expect(newestTag(all, { range: '^3', prefix: 'v' })).toBeUndefined();
  });
  it('includes prereleases only when asked', () => {
    expect(newestTag(all, { range: '>=1.2.5 <2', prefix: 'v' })?.tag).toBe('v1.2.5');
    expect(newestTag(all, { range: '>=1.2.5 <2', prefix: 'v', prereleases: true })?.tag).toBe('v1.3.0-rc.1');
  });
  it('reads short versions and ignores branches', () => {
    expect(tagVersion('v1.2', 'v')).toBe('1.2.0');
    expect(tagVersion('3')).toBe('3.0.0');
    expect(tagVersion('v01.2', 'v')).toBeUndefined();
    expect(tagVersion('release-1.2.3', 'v')).toBeUndefined();
    expect(newestTag(['refs/heads/v9.0.0', ...refs('v1.2')], { range: '*', prefix: 'v' })?.tag).toBe('v1.2');
  });
  it('does not depend on listing order (ties go to the smallest name)', () => {
    const tags = refs('v1.2', 'v1.2.0', 'v1.1.9', 'v1.2.0-beta');
    fc.assert(
      fc.property(fc.shuffledSubarray(tags, { minLength: tags.length, maxLength: tags.length }), (order) => {
        expect(newestTag(order, { range: '*', prefix: 'v' })?.tag).toBe('v1.2');
      }),
    );
  });
});
