/**
 * The suite every Coordination implementation passes (coordination/service.ts):
 * gc exclusion (ingests against gc's exclusive phase, bounded waits,
 * re-entrant ingests), one gc turn at a time, use leases, last uses, the
 * path-info change stamp and pending uploads. Given a second handle on the
 * same store (`other`: another process on a cache root), exclusion, leases,
 * uses and the stamp are checked across the two as well.
 */

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordination, PendingUpload, WaitOptions } from '../../src/coordination/service.js';
import { isFetchCacheError } from '../../src/errors.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import type { PathInfoService } from '../../src/pathinfo/service.js';

export interface CoordinationUnderTest {
  coordination: Coordination;
  /** Another handle on the same store, where the store can be shared. */
  other?: Coordination | undefined;
  /** The store's path-info service, which must bump the change stamp. */
  pathInfos?: PathInfoService | undefined;
  /** A path info `pathInfos` can store (its tree need not be stored). */
  sample?: PathInfo | undefined;
  close(): Promise<void>;
}

const digest = (n: number) => new Uint8Array(20).fill(n);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** Waits (at most 10 s) until `done()`. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !done(); i++) await tick(10);
  expect(done()).toBe(true);
}

/** A promise and the functions that settle it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/**
 * An ingest of `c` held open: resolves once its function runs, with `finish` (which lets it end) and
 * `done` (the ingest's own promise).
 */
async function heldIngest(
  c: Coordination,
  options?: WaitOptions,
): Promise<{ finish: () => void; done: Promise<void> }> {
  const inside = gate();
  const finish = gate();
  const done = c.ingest(async () => {
    inside.open();
    await finish.promise;
  }, options);
  await Promise.race([inside.promise, done]);
  return { finish: finish.open, done };
}

function upload(n: number, receivedAt = Date.now()): PendingUpload {
  return {
    node: { type: 'file', digest: new Uint8Array(32).fill(n), size: n, executable: false },
    narSha256: new Uint8Array(32).fill(n),
    narSize: 100 + n,
    fileSha256: new Uint8Array(32).fill(100 + n),
    fileSize: 50 + n,
    compression: 'xz',
    receivedAt,
  };
}

export function coordinationConformance(name: string, open: () => Promise<CoordinationUnderTest>): void {
  describe(`Coordination conformance: ${name}`, () => {
    let t: CoordinationUnderTest;
    let c: Coordination;
    beforeEach(async () => {
      t = await open();
      c = t.coordination;
    });
    afterEach(async () => {
      await t.close();
    });

    it('ingest returns what its function returns and passes its error on', async () => {
      expect(await c.ingest(async () => 42)).toBe(42);
      await expect(c.ingest(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      // Nothing is left held: gc's exclusive phase starts at once.
      const end = await c.exclusive({ timeoutMs: 5_000 });
      await end();
    });

    it('pathWrite returns what its function returns, passes its error on, and leaves nothing held', async () => {
      const path = new Uint8Array(20).fill(9);
      expect(await c.pathWrite(path, async () => 'written')).toBe('written');
      await expect(c.pathWrite(path, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      expect(await c.pathWrite(path, async () => 'again')).toBe('again');
    });

    it("gc's exclusive phase waits for a running ingest, and new ingests wait for it", async () => {
      const first = await heldIngest(c);
      const waits: string[] = [];
      let exclusive = false;
      const begun = c.exclusive({ onWait: (why) => waits.push(why) }).then((end) => {
        exclusive = true;
        return end;
      });
      await until(() => waits.length > 0);
      await tick(50);
      expect(exclusive).toBe(false);
      expect(waits.length).toBe(1);
      first.finish();
      await first.done;
      const end = await begun;
      let second = false;
      const later = c.ingest(async () => {
        second = true;
      });
      await tick(100);
      expect(second).toBe(false);
      await end();
      await later;
      expect(second).toBe(true);
    });

    it('the waits are bounded: ERR_STORE_LOCKED, and nothing is left behind', async () => {
      const running = await heldIngest(c);
      const e = await c.exclusive({ timeoutMs: 150 }).catch((x: unknown) => x);
      expect(isFetchCacheError(e, 'ERR_STORE_LOCKED')).toBe(true);
      running.finish();
      await running.done;
      // The exclusive phase that gave up holds nothing: an ingest runs at once.
      expect(await c.ingest(async () => 'ran', { timeoutMs: 1_000 })).toBe('ran');
      const end = await c.exclusive();
      const e2 = await c.ingest(async () => 'ran', { timeoutMs: 150 }).catch((x: unknown) => x);
      expect(isFetchCacheError(e2, 'ERR_STORE_LOCKED')).toBe(true);
      await end();
      expect(await c.ingest(async () => 'ran')).toBe('ran');
    });

    it('an ingest inside an ingest runs at once, even while a gc waits', async () => {
      const inside = gate();
      const nested = gate();
      const outer = c.ingest(async () => {
        inside.open();
        await nested.promise;
        return c.ingest(async () => 'inner', { timeoutMs: 1_000 });
      });
      await inside.promise;
      const begun = c.exclusive({ timeoutMs: 10_000 });
      await tick(50);
      nested.open();
      expect(await outer).toBe('inner');
      await (await begun)();
    });

    it('a waiting gc lets new ingests of the handle join only while one that began before it runs', async () => {
      const first = await heldIngest(c);
      let gcIn = false;
      const begun = c.exclusive({ timeoutMs: 10_000 }).then((end) => {
        gcIn = true;
        return end;
      });
      await tick(50);
      // Joins the first ingest (which the gc waits for), and the gc waits for it too.
      const joined = await heldIngest(c, { timeoutMs: 1_000 });
      first.finish();
      await first.done;
      // Only a joined ingest runs now: the next waits for the gc, which waits for the joined one.
      let third = false;
      const later = c.ingest(async () => {
        third = true;
      });
      await tick(150);
      expect(third).toBe(false);
      expect(gcIn).toBe(false);
      joined.finish();
      await joined.done;
      const end = await begun;
      expect(third).toBe(false);
      await end();
      await later;
      expect(third).toBe(true);
    });

    it('one gc turn at a time', async () => {
      const end = await c.gcTurn();
      let second = false;
      const waits: string[] = [];
      const next = c.gcTurn({ onWait: (why) => waits.push(why) }).then((e) => {
        second = true;
        return e;
      });
      await until(() => waits.length > 0);
      await tick(50);
      expect(second).toBe(false);
      expect(waits.length).toBe(1);
      const e = await c.gcTurn({ timeoutMs: 100 }).catch((x: unknown) => x);
      expect(isFetchCacheError(e, 'ERR_STORE_LOCKED')).toBe(true);
      await end();
      await end(); // twice is harmless
      await (await next)();
      await (await c.gcTurn({ timeoutMs: 1_000 }))();
    });

    it('holds: a held path is listed until its last hold ends', async () => {
      expect(await c.held()).toEqual(new Set());
      const a1 = await c.hold(digest(1));
      const a2 = await c.hold(digest(1));
      const b = await c.hold(digest(2));
      expect(await c.held()).toEqual(new Set([hex(digest(1)), hex(digest(2))]));
      await a1();
      await a1();
      expect(await c.held()).toEqual(new Set([hex(digest(1)), hex(digest(2))]));
      await a2();
      await b();
      expect(await c.held()).toEqual(new Set());
    });

    it('uses: the last one noted per path, forgotten on request', async () => {
      c.recordUse(digest(1), 1_000);
      c.recordUse(digest(2), 2_000);
      c.recordUse(digest(1), 3_000);
      await c.flushUses();
      expect(await c.lastUses()).toEqual(
        new Map([
          [hex(digest(1)), 3_000],
          [hex(digest(2)), 2_000],
        ]),
      );
      // The last noted wins, even when it is older (a tool setting times).
      c.recordUse(digest(1), 500);
      await c.flushUses();
      expect((await c.lastUses()).get(hex(digest(1)))).toBe(500);
      expect(await c.forgetUses([hex(digest(1)), hex(digest(9))])).toBe(1);
      expect([...(await c.lastUses()).keys()]).toEqual([hex(digest(2))]);
      const before = Date.now();
      c.recordUse(digest(3));
      await c.flushUses();
      expect((await c.lastUses()).get(hex(digest(3)))).toBeGreaterThanOrEqual(before);
    });

    it('the change stamp changes with every bump, and only then', async () => {
      const s0 = c.changes.current();
      expect(c.changes.current()).toBe(s0);
      c.changes.bump();
      const s1 = c.changes.current();
      expect(s1).not.toBe(s0);
      c.changes.watch();
      try {
        expect(c.changes.current()).toBe(s1);
        c.changes.bump();
        expect(c.changes.current()).not.toBe(s1);
      } finally {
        c.changes.unwatch();
      }
    });

    it('path-info puts and deletes change the stamp', async () => {
      if (t.pathInfos === undefined || t.sample === undefined) return;
      const s0 = c.changes.current();
      await t.pathInfos.put(t.sample);
      const s1 = c.changes.current();
      expect(s1).not.toBe(s0);
      await t.pathInfos.delete(t.sample.storePath.digest);
      expect(c.changes.current()).not.toBe(s1);
    });

    it('pending uploads: found by NAR hash and file hash, replaced, removed', async () => {
      const u = c.uploads;
      expect(await u.count()).toBe(0);
      expect(await u.byNarHash(upload(1).narSha256)).toBeUndefined();
      const one = upload(1);
      await u.add(one);
      await u.add(upload(2));
      expect(await u.count()).toBe(2);
      expect(await u.byNarHash(one.narSha256)).toEqual(one);
      expect(await u.byFileHash(one.fileSha256)).toEqual(one);
      expect(await u.byFileHash(new Uint8Array(32))).toBeUndefined();
      // Uploaded again: the newer one replaces it, and removing the older one leaves the newer.
      const again = { ...upload(1, one.receivedAt + 1), fileSha256: new Uint8Array(32).fill(77) };
      await u.add(again);
      expect(await u.count()).toBe(2);
      await u.remove(one);
      expect(await u.byNarHash(one.narSha256)).toEqual(again);
      await u.remove(again);
      expect(await u.byNarHash(one.narSha256)).toBeUndefined();
      expect(await u.count()).toBe(1);
    });

    it('across two handles on one store: exclusion, holds, uses and the stamp', async () => {
      const o = t.other;
      if (o === undefined) return;
      // Joining a waiting gc's ingests is for ingests of the same handle: the other's wait.
      const first = await heldIngest(c);
      const gcBegun = c.exclusive({ timeoutMs: 10_000 });
      await tick(50);
      let otherRan = false;
      const otherIngest = o.ingest(async () => {
        otherRan = true;
      });
      await tick(150);
      expect(otherRan).toBe(false);
      first.finish();
      await first.done;
      await (await gcBegun)();
      await otherIngest;
      expect(otherRan).toBe(true);

      const end = await c.exclusive();
      let ran = false;
      const blocked = o.ingest(async () => {
        ran = true;
      });
      await tick(150);
      expect(ran).toBe(false);
      await end();
      await blocked;
      expect(ran).toBe(true);

      const running = await heldIngest(o);
      const e = await c.exclusive({ timeoutMs: 150 }).catch((x: unknown) => x);
      expect(isFetchCacheError(e, 'ERR_STORE_LOCKED')).toBe(true);
      running.finish();
      await running.done;

      const turn = await o.gcTurn();
      const e2 = await c.gcTurn({ timeoutMs: 150 }).catch((x: unknown) => x);
      expect(isFetchCacheError(e2, 'ERR_STORE_LOCKED')).toBe(true);
      await turn();

      const release = await o.hold(digest(5));
      expect((await c.held()).has(hex(digest(5)))).toBe(true);
      await release();
      expect((await c.held()).has(hex(digest(5)))).toBe(false);

      o.recordUse(digest(6), 6_000);
      await o.flushUses();
      expect((await c.lastUses()).get(hex(digest(6)))).toBe(6_000);

      const s0 = c.changes.current();
      o.changes.bump();
      expect(c.changes.current()).not.toBe(s0);
    });
  });
}
