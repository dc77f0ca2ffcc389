/**
 * The path-info change stamp (service.ts `ChangeStamp`) of a store in
 * PostgreSQL, seen by processes on every machine. The database keeps the
 * truth: every write to the `pathinfo` sublevel bumps `pathinfo_generation`
 * in its own transaction and announces the new value with
 * `NOTIFY fetch_cache_pathinfo` when it commits (storage/postgres.ts,
 * schema version 2). The stamp is `<bumps in this process>:<notifications
 * received>:<generation read>`:
 *
 * - `bump()` (the path-info service, after its write) counts in memory,
 *   shared by every handle on the same store in this process, so a write is
 *   seen by this process's readers the moment it returns;
 * - `watch()` (a server) LISTENs on a connection of its own: each
 *   notification changes the stamp, so a write by another process or
 *   machine changes it as soon as the notification arrives (9–17 ms on
 *   loopback), with no query per request. The channel is the database's,
 *   not the schema's, so a store in another schema of the same database
 *   changes it too (harmless: a reader only reads again); the payload is
 *   not trusted for that reason. Notifications sent while the listening
 *   connection was down are lost, so each (re)start of the LISTEN reads the
 *   generation again (postgres.js reconnects and calls back);
 * - without `watch()`, another process's writes are not seen: `current()`
 *   cannot wait for a query. Only long-running readers keep things made
 *   from path infos, and they watch.
 */

import type { Sql } from 'postgres';
import { PATHINFO_CHANNEL, pathInfoGeneration } from '../storage/postgres.js';
import type { ChangeStamp } from './service.js';

/** Bumps counted in this process, by store (see PostgresCoordination's `identity`). */
const BUMPS = new Map<string, { n: number }>();

export class PgChangeStamp implements ChangeStamp {
  private readonly bumps: { n: number };
  private generation: bigint;
  /** Notifications received. */
  private notified = 0;
  private listening: Promise<{ unlisten(): Promise<void> } | undefined> | undefined;

  /**
   * `sql`: the pool that LISTENs (postgres.js gives a listener a connection of its own);
   * `identity`: the store, for sharing bumps between handles in this process; `generation`: its
   * value when the store was opened.
   */
  constructor(
    private readonly sql: Sql,
    identity: string,
    generation: bigint,
  ) {
    let bumps = BUMPS.get(identity);
    if (bumps === undefined) {
      bumps = { n: 0 };
      BUMPS.set(identity, bumps);
    }
    this.bumps = bumps;
    this.generation = generation;
  }

  current(): string {
    return `${this.bumps.n}:${this.notified}:${this.generation}`;
  }

  bump(): void {
    this.bumps.n++;
  }

  watch(): boolean {
    if (this.listening !== undefined) return true;
    const listening = this.sql
      .listen(
        PATHINFO_CHANNEL,
        () => {
          this.notified++;
        },
        () => void this.reread(),
      )
      .catch(() => {
        // Not listening (the server refused): the stamp moves with this process's bumps only.
        if (this.listening === listening) this.listening = undefined;
        return undefined;
      });
    this.listening = listening;
    return true;
  }

  unwatch(): void {
    const listening = this.listening;
    this.listening = undefined;
    void listening?.then((l) => l?.unlisten()).catch(() => {});
  }

  /** Stops watching, once the LISTEN is gone (before the pool ends). */
  async close(): Promise<void> {
    const listening = this.listening;
    this.listening = undefined;
    await listening?.then((l) => l?.unlisten()).catch(() => {});
  }

  /** After a (re)started LISTEN: what was announced while nobody listened. */
  private async reread(): Promise<void> {
    try {
      this.generation = await pathInfoGeneration(this.sql);
    } catch {
      // the next reconnect reads it again
    }
  }
}
