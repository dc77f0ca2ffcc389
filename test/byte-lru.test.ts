/** ByteLru (src/byte-lru.ts): the byte-budgeted LRU behind the git delta-base cache and the NAR cache. */

import { describe, expect, it } from 'vitest';
import { ByteLru } from '../src/byte-lru.js';

const lru = (budget: number) => new ByteLru<string, string>(budget, (v) => v.length);

describe('ByteLru', () => {
  it('evicts the least recently used once the sizes pass the budget; get makes an entry recent', () => {
    const c = lru(6);
    c.set('a', 'aa');
    c.set('b', 'bb');
    c.set('c', 'cc');
    expect(c.get('a')).toBe('aa');
    c.set('d', 'dd');
    expect([c.has('a'), c.has('b'), c.has('c'), c.has('d')]).toEqual([true, false, true, true]);
    expect(c.bytes).toBe(6);
  });

  it('replacing a value counts only the new size, and the last entry stays even over the budget', () => {
    const c = lru(4);
    c.set('a', 'aaa');
    c.set('a', 'a');
    expect(c.bytes).toBe(1);
    c.set('big', 'bbbbbbbb');
    expect([c.has('a'), c.get('big'), c.bytes]).toEqual([false, 'bbbbbbbb', 8]);
    c.clear();
    expect([c.has('big'), c.bytes]).toEqual([false, 0]);
  });
});
