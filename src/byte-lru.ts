/**
 * A map bounded by the summed sizes of its values: once they pass `budget`,
 * the least recently used entries go first (never the last one left). Used
 * for delta bases while reading and indexing git packs and for whole NARs
 * in the server's NAR cache.
 */
export class ByteLru<K, V> {
  private readonly map = new Map<K, V>();
  private total = 0;

  constructor(
    private readonly budget: number,
    private readonly sizeOf: (value: V) => number,
  ) {}

  /** Summed sizes of the values held now. */
  get bytes(): number {
    return this.total;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  /** Keeps `value` (replacing any under `key`) as the most recently used, then evicts down to the budget. */
  set(key: K, value: V): void {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.total -= this.sizeOf(old);
    }
    this.map.set(key, value);
    this.total += this.sizeOf(value);
    while (this.total > this.budget && this.map.size > 1) {
      const [k, v] = this.map.entries().next().value as [K, V];
      this.map.delete(k);
      this.total -= this.sizeOf(v);
    }
  }

  clear(): void {
    this.map.clear();
    this.total = 0;
  }
}
