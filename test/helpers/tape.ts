/**
 * Runs a test suite written for tape under vitest: abstract-level ships its
 * own suite (`abstract-level/test`) written so, and runs it with tape. Each
 * `test(name, fn)` becomes a vitest test, and `t` has the assertions that
 * suite uses. As with tape, a failed assertion does not throw (the code
 * after it runs on); the vitest test fails at its end with every failure
 * listed. A test ends as tape ends it: when its plan is met, when `t.end()`
 * is called, or when the promise its function returned settles (a planned
 * test also waits for its plan); a test that ran more or fewer assertions
 * than planned fails.
 */

import { inspect, isDeepStrictEqual } from 'node:util';
import { it } from 'vitest';

export interface Tape {
  plan(n: number): void;
  end(): void;
  is(actual: unknown, expected: unknown, msg?: string): void;
  isNot(actual: unknown, expected: unknown, msg?: string): void;
  same(actual: unknown, expected: unknown, msg?: string): void;
  ok(value: unknown, msg?: string): void;
  pass(msg?: string): void;
  fail(msg?: unknown): void;
  throws(fn: () => unknown, expected?: unknown, msg?: string): void;
  doesNotThrow(fn: () => unknown, msg?: string): void;
}

type TapeFn = (t: Tape) => unknown;

export interface TapeTest {
  (name: string, ...rest: unknown[]): void;
  skip(name: string, ...rest: unknown[]): void;
  only(name: string, ...rest: unknown[]): void;
}

/** A tape-like `test` function that registers vitest tests. */
export function tapeTests(timeoutMs = 20_000): TapeTest {
  const fnOf = (rest: unknown[]) => rest.find((r) => typeof r === 'function') as TapeFn;
  const test = ((name: string, ...rest: unknown[]) => {
    const fn = fnOf(rest);
    it(name, () => runTape(fn), timeoutMs);
  }) as TapeTest;
  test.skip = (name: string) => it.skip(name, () => {});
  test.only = (name: string, ...rest: unknown[]) => test(name, ...rest);
  return test;
}

const show = (v: unknown) => inspect(v, { depth: 4, breakLength: Number.POSITIVE_INFINITY });

async function runTape(fn: TapeFn): Promise<void> {
  const failures: string[] = [];
  let count = 0;
  let planned: number | undefined;
  let ended = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const check = () => {
    if (planned !== undefined && count >= planned) finish();
  };
  const assert = (ok: boolean, what: string) => {
    count++;
    if (ended && planned === undefined) failures.push(`assertion after the end: ${what}`);
    if (!ok) failures.push(what);
    check();
  };
  const t: Tape = {
    plan(n) {
      planned = n;
      check();
    },
    end() {
      finish();
    },
    is(actual, expected, msg = 'should be equal') {
      assert(Object.is(actual, expected), `${msg}: expected ${show(expected)}, got ${show(actual)}`);
    },
    isNot(actual, expected, msg = 'should not be equal') {
      assert(!Object.is(actual, expected), `${msg}: got ${show(actual)}`);
    },
    same(actual, expected, msg = 'should be deeply equal') {
      assert(isDeepStrictEqual(actual, expected), `${msg}: expected ${show(expected)}, got ${show(actual)}`);
    },
    ok(value, msg = 'should be truthy') {
      assert(Boolean(value), `${msg}: got ${show(value)}`);
    },
    pass(msg = 'pass') {
      assert(true, msg);
    },
    fail(msg = 'fail') {
      assert(false, msg instanceof Error ? (msg.stack ?? msg.message) : String(msg));
    },
    throws(fn, expected, msg = 'should throw') {
      let error: unknown;
      let threw = false;
      try {
        fn();
      } catch (e) {
        threw = true;
        error = e;
      }
      let ok = threw;
      if (ok && expected instanceof RegExp) ok = expected.test(String((error as Error)?.message ?? error));
      else if (ok && typeof expected === 'function') {
        ok =
          expected === Error || expected.prototype instanceof Error
            ? error instanceof (expected as new () => Error)
            : (expected as (e: unknown) => unknown)(error) === true;
      }
      assert(ok, `${msg}: ${threw ? `threw ${show(error)}` : 'did not throw'}`);
    },
    doesNotThrow(fn, msg = 'should not throw') {
      try {
        fn();
        assert(true, msg);
      } catch (e) {
        assert(false, `${msg}: threw ${show(e)}`);
      }
    },
  };
  try {
    const ret = fn(t) as Promise<unknown> | undefined;
    if (ret !== undefined && ret !== null && typeof ret.then === 'function') {
      ret.then(
        () => {
          if (planned === undefined) finish();
        },
        (e: unknown) => {
          failures.push(`rejected: ${e instanceof Error ? (e.stack ?? e.message) : show(e)}`);
          finish();
        },
      );
    }
  } catch (e) {
    failures.push(`threw: ${e instanceof Error ? (e.stack ?? e.message) : show(e)}`);
    finish();
  }
  await done;
  ended = true;
  // Assertions that come after the plan was met count against it, as in tape.
  await new Promise((r) => setTimeout(r, 10));
  if (planned !== undefined && count !== planned)
    failures.push(`planned ${planned} assertions, ran ${count}`);
  if (failures.length > 0) throw new Error(failures.join('\n'));
}
