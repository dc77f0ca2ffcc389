/**
 * A small bounded-concurrency runner for per-pin work: at most `limit` tasks
 * at once, results in input order. With `failFast`, the first failure stops
 * new tasks from starting, the running ones are awaited (so nothing is left
 * writing to the cache behind the caller's back), and that failure is thrown.
 */

export const DEFAULT_CONCURRENCY = 8;

export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new TypeError(`concurrency must be a positive integer, not ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
