/** Wraps `obj[method]` so that each call is counted (and still made); returns the live counter. */
export function countCalls<T extends object, K extends keyof T>(obj: T, method: K): { count: number } {
  const counter = { count: 0 };
  const original = obj[method] as unknown as (...args: unknown[]) => unknown;
  const wrapped = (...args: unknown[]) => {
    counter.count++;
    return original.apply(obj, args);
  };
  obj[method] = wrapped as unknown as T[K];
  return counter;
}
