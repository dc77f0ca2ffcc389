/**
 * Coordination (service.ts) for a store in PostgreSQL (backends/postgres.ts),
 * shared by processes on any number of machines. Nothing here depends on a
 * process staying alive: what a process holds is either a lock of its
 * database session, which PostgreSQL releases when the session ends (the
 * process exits or is killed, or its connection drops), or a row that
 * expires.
 *
 * gc exclusion, with session-level advisory locks on two keys of the store
 * (hashed from its schema, so stores in several schemas of one database are
 * apart): INGEST, held shared by every running ingest, and GATE, held by a
 * gc from the start of its exclusive phase.
 *
 *   ingest: take INGEST shared, then look at GATE (take it shared and drop
 *           it at once): if a gc holds it, drop INGEST again and retry
 *           (unless an ingest of this handle that got past GATE still runs:
 *           then go ahead, service.ts says why); run; drop INGEST. (One
 *           statement, with try-locks: never blocks.)
 *   gc:     take GATE (no new ingest gets past it from now on), then INGEST
 *           exclusively, which it gets once every ingest that got in before
 *           has ended. End: drop both.
 *
 * So while gc holds INGEST no ingest runs, and an ingest that started
 * before the gc took GATE has its path info written before the gc looks:
 * the handshake of local.ts, with the database's lock table in place of
 * lease records and pid checks. A session can also end while its process
 * goes on (the connection drops): its ingest has lost INGEST, and a gc may
 * be deleting what it reused. So while the process runs ingests, a path
 * info is written (`pathWrite`) only holding a fourth key, WRITE, shared,
 * and only after a check that the sessions of its running ingests still
 * hold INGEST (all of them: which ingest a write belongs to is not
 * tracked, see service.ts); gc takes WRITE exclusively after INGEST. A path
 * write that checked before the session ended keeps gc out until its write
 * is done (gc then sees it); one that checks after refuses
 * (ERR_STORE_BACKEND), and nothing of the fetch becomes visible. Every
 * wait polls a try-lock (bounded, ERR_STORE_LOCKED). The ingests of one
 * process share one reserved connection (the lock counts stack); each gc
 * phase and gc turn reserves one of its own (a session never conflicts
 * with its own locks). One gc at a time: a third key, TURN, held
 * exclusively. Session locks need a direct connection or a pooler in
 * session mode, not transaction mode.
 *
 * Use leases: rows of `use_leases` that expire (a minute), renewed while
 * held; a killed server's leases stop counting when they expire. Last uses:
 * rows of `path_uses`, written behind the caller in batches (one upsert per
 * batch). Pending uploads: pg-uploads.ts. The change stamp: pg-change-stamp.ts.
 * Path writes: a session advisory lock per path (`pathWrite`), so two
 * servers' read-then-write of one path info never interleave.
 */

import type { ReservedSql, Sql } from 'postgres';
import { FetchCacheError } from '../errors.js';
import { describeServer, pathInfoGeneration, postgresError } from '../storage/postgres.js';
import { WAIT_TIMEOUT_MS } from './memory.js';
import { PgChangeStamp } from './pg-change-stamp.js';
import { PgPendingUploads } from './pg-uploads.js';
import type { Coordination, WaitOptions } from './service.js';

/** A use lease is void this long after it was taken or last renewed; renewed at a third of it. */
export const HOLD_TTL_MS = 60_000;

/** Last uses written per statement. */
const USES_PER_BATCH = 5_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pause = () => sleep(40 + Math.random() * 80);

/** Advisory lock keys of one store (bigints, as text). */
interface LockKeys {
  readonly ingest: string;
  readonly gate: string;
  readonly turn: string;
  readonly write: string;
}

/**
 * Take INGEST shared, then check GATE: 1 when the ingest may run (and then holds INGEST); 2 when a gc
 * holds GATE but `$3` (join) lets it run all the same, holding INGEST; 0 (holding nothing) while a gc
 * holds GATE or INGEST.
 */
const ENTER = `select case when pg_try_advisory_lock_shared($1::bigint) then
    case when pg_try_advisory_lock_shared($2::bigint) then pg_advisory_unlock_shared($2::bigint)::int
    when $3::boolean then 2
    else (not pg_advisory_unlock_shared($1::bigint))::int end
  else 0 end as entered, pg_backend_pid() as pid`;

/** The granted holds of advisory lock `$1` in this database (for the queries below). */
const HOLDS_OF = `from pg_locks
  where locktype = 'advisory' and objsubid = 1 and granted
    and database = (select oid from pg_database where datname = current_database())
    and ((classid::bigint << 32) | objid::bigint) = $1::bigint`;

/** Whether the session of backend `$2` holds advisory lock `$1` shared. */
const HOLDS_SHARED = `select exists(select 1 ${HOLDS_OF} and mode = 'ShareLock' and pid = $2::int) as held`;

/** The number of sessions that hold advisory lock `$1` in `$2` mode. */
const HOLDERS = `select count(distinct pid)::int as n ${HOLDS_OF} and mode = $2`;

export interface PostgresCoordinationOptions {
  /** The store's pool: rows (uses, leases, uploads). */
  readonly sql: Sql;
  /** A pool for sessions that hold locks (reserved connections) and for the LISTEN connection. */
  readonly sessions: Sql;
  /** How long a use lease lasts without renewal (default HOLD_TTL_MS). */
  readonly holdTtlMs?: number;
}

export class PostgresCoordination implements Coordination {
  readonly changes: PgChangeStamp;
  readonly uploads: PgPendingUploads;
  private readonly sql: Sql;
  private readonly sessions: Sql;
  private readonly holdTtlMs: number;
  /**
   * The running ingests of this handle, by the backend pid of the session that took INGEST for them
   * (one pid unless a connection was lost meanwhile).
   */
  private readonly entered = new Map<number, number>();
  /** Running ingests of this handle that got past GATE (so began before any gc that now holds it). */
  private before = 0;
  /** The connection whose session holds INGEST for this process's ingests. */
  private ingestSession: Promise<ReservedSql> | undefined;
  private readonly holds = new Set<string>();
  private renewer: NodeJS.Timeout | undefined;
  private pendingUses = new Map<string, number>();
  private writing: Promise<void> | undefined;

  private constructor(
    options: PostgresCoordinationOptions,
    private readonly keys: LockKeys,
    identity: string,
    generation: bigint,
  ) {
    this.sql = options.sql;
    this.sessions = options.sessions;
    this.holdTtlMs = options.holdTtlMs ?? HOLD_TTL_MS;
    this.changes = new PgChangeStamp(options.sessions, identity, generation);
    this.uploads = new PgPendingUploads(options.sql);
  }

  /** The coordination of the store `options.sql` is connected to (its schema, in its database). */
  static async open(options: PostgresCoordinationOptions): Promise<PostgresCoordination> {
    const sql = options.sql;
    try {
      const [row] = await sql<
        { schema: string; ingest: string; gate: string; turn: string; write: string }[]
      >`
        select current_schema() as schema,
          hashtextextended(current_schema() || '/fetch-cache/ingest', 0)::text as ingest,
          hashtextextended(current_schema() || '/fetch-cache/gc-gate', 0)::text as gate,
          hashtextextended(current_schema() || '/fetch-cache/gc-turn', 0)::text as turn,
          hashtextextended(current_schema() || '/fetch-cache/path-write', 0)::text as write`;
      const generation = await pathInfoGeneration(sql);
      return new PostgresCoordination(
        options,
        { ingest: row!.ingest, gate: row!.gate, turn: row!.turn, write: row!.write },
        `${describeServer(sql)}/${row!.schema}`,
        generation,
      );
    } catch (e) {
      throw postgresError(describeServer(sql), 'cannot open the coordination', e);
    }
  }

  async ingest<T>(fn: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
    const { pid, joined } = await this.enter(options);
    this.entered.set(pid, (this.entered.get(pid) ?? 0) + 1);
    if (!joined) this.before++;
    try {
      return await fn();
    } finally {
      const left = this.entered.get(pid)! - 1;
      if (left === 0) this.entered.delete(pid);
      else this.entered.set(pid, left);
      if (!joined) this.before--;
      await this.leave();
    }
  }

  async exclusive(options: WaitOptions = {}): Promise<() => Promise<void>> {
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    const session = await this.reserve();
    const end = this.ender(session);
    try {
      // Only a moment: ingests hold GATE for one statement, and gcTurn keeps other gcs away.
      await this.acquire(session, this.keys.gate, deadline, () =>
        Promise.resolve('another gc is deleting from the store'),
      );
      await this.acquire(
        session,
        this.keys.ingest,
        deadline,
        async () => `gc gave up waiting for fetches in ${await this.holders('ShareLock')} process(es)`,
        {
          waiting: async () => {
            options.onWait?.(
              `waiting for fetches in ${await this.holders('ShareLock')} process(es) to finish`,
            );
          },
        },
      );
      // A path write of an ingest whose session ended meanwhile finishes first (see above).
      await this.acquire(session, this.keys.write, deadline, () =>
        Promise.resolve('gc gave up waiting for a path info being written'),
      );
      return end;
    } catch (e) {
      await end();
      throw e;
    }
  }

  async gcTurn(options: WaitOptions = {}): Promise<() => Promise<void>> {
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    const session = await this.reserve();
    const end = this.ender(session);
    try {
      await this.acquire(
        session,
        this.keys.turn,
        deadline,
        () => Promise.resolve('another gc has been running for too long'),
        {
          waiting: async () => {
            options.onWait?.('waiting for another gc to finish');
          },
        },
      );
      return end;
    } catch (e) {
      await end();
      throw e;
    }
  }

  /**
   * Under a session-level advisory lock keyed by the store and the path, on a connection of its own:
   * a second writer of the path waits for the first (bounded), and a killed writer's lock goes with
   * its session.
   */
  async pathWrite<T>(storePathDigest: Uint8Array, fn: () => Promise<T>): Promise<T> {
    const ingests = [...this.entered.keys()];
    const deadline = Date.now() + WAIT_TIMEOUT_MS;
    const session = await this.reserve();
    const end = this.ender(session);
    try {
      await this.acquire(session, await this.pathKey(session, storePathDigest), deadline, () =>
        Promise.resolve('another process has been writing this path for too long'),
      );
      if (ingests.length > 0) {
        await this.acquire(
          session,
          this.keys.write,
          deadline,
          () => Promise.resolve('gc has been deleting from the store for too long'),
          { shared: true },
        );
        for (const pid of ingests) await this.checkIngest(session, pid);
      }
      return await fn();
    } finally {
      await end();
    }
  }

  /** Refuses (ERR_STORE_BACKEND) when the session of backend `pid` no longer holds INGEST. */
  private async checkIngest(session: ReservedSql, pid: number): Promise<void> {
    let held: boolean;
    try {
      const [row] = await session.unsafe<{ held: boolean }[]>(HOLDS_SHARED, [this.keys.ingest, pid]);
      held = row?.held === true;
    } catch (e) {
      throw postgresError(describeServer(this.sql), 'cannot check the ingest lock', e);
    }
    if (!held) {
      throw new FetchCacheError(
        'ERR_STORE_BACKEND',
        `${describeServer(this.sql)}: the connection that kept gc away from this fetch was lost, so a gc may have deleted what it reused; nothing was recorded (fetch again)`,
      );
    }
  }

  /** The advisory lock key of a path: hashed from the store's schema and the store path digest. */
  private async pathKey(session: ReservedSql, storePathDigest: Uint8Array): Promise<string> {
    try {
      const [row] = await session.unsafe<{ key: string }[]>(
        "select hashtextextended(current_schema() || '/fetch-cache/path/' || encode($1::bytea, 'hex'), 0)::text as key",
        [storePathDigest],
      );
      return row!.key;
    } catch (e) {
      throw postgresError(describeServer(this.sql), 'cannot lock a path for writing', e);
    }
  }

  async hold(storePathDigest: Uint8Array): Promise<() => Promise<void>> {
    const [row] = await this.query<{ id: string }>(
      'hold a path',
      `insert into use_leases (path, expires_at) values ($1::bytea, now() + make_interval(secs => $2::float8 / 1000))
       returning id::text as id`,
      [storePathDigest, this.holdTtlMs],
    );
    const id = row!.id;
    this.holds.add(id);
    this.renewer ??= setInterval(() => void this.renew(), this.holdTtlMs / 3).unref();
    let ended = false;
    return async () => {
      if (ended) return;
      ended = true;
      this.holds.delete(id);
      if (this.holds.size === 0) this.stopRenewing();
      await this.query('release a path', 'delete from use_leases where id = $1::bigint', [id]);
    };
  }

  async held(): Promise<Set<string>> {
    await this.query('drop expired leases', 'delete from use_leases where expires_at <= now()', []);
    const rows = await this.query<{ path: string }>(
      'list held paths',
      "select distinct encode(path, 'hex') as path from use_leases where expires_at > now()",
      [],
    );
    return new Set(rows.map((r) => r.path));
  }

  recordUse(storePathDigest: Uint8Array, when = Date.now()): void {
    this.pendingUses.set(Buffer.from(storePathDigest).toString('hex'), Math.max(0, Math.floor(when)));
    this.writing ??= this.drain();
  }

  async flushUses(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  async lastUses(): Promise<Map<string, number>> {
    const rows = await this.query<{ path: string; used_at: string }>(
      'read last uses',
      "select encode(path, 'hex') as path, used_at::text as used_at from path_uses",
      [],
    );
    return new Map(rows.map((r) => [r.path, Number(r.used_at)]));
  }

  async forgetUses(storePathDigests: readonly string[]): Promise<number> {
    let count = 0;
    for (let at = 0; at < storePathDigests.length; at += USES_PER_BATCH) {
      const keys = storePathDigests.slice(at, at + USES_PER_BATCH).map((hex) => Buffer.from(hex, 'hex'));
      const [row] = await this.query<{ n: number }>(
        'forget uses',
        'with gone as (delete from path_uses where path = any($1::bytea[]) returning 1) select count(*)::int as n from gone',
        [keys],
      );
      count += row?.n ?? 0;
    }
    return count;
  }

  async close(): Promise<void> {
    await this.flushUses();
    this.stopRenewing();
    await this.changes.close();
    const session = this.ingestSession;
    this.ingestSession = undefined;
    await session?.then((s) => s.release()).catch(() => {});
  }

  /**
   * Wait (bounded) until this process's ingests may run, holding INGEST shared; the backend pid of the
   * session that holds it, and whether it went past a gc holding GATE: it joins this handle's ingests
   * that began before (service.ts), whose INGEST the gc cannot take while they run on this session.
   */
  private async enter(options: WaitOptions): Promise<{ pid: number; joined: boolean }> {
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    let told = false;
    for (;;) {
      const session = await this.session();
      let entered = 0;
      let pid = 0;
      try {
        const [row] = await session.unsafe<{ entered: number; pid: number }[]>(ENTER, [
          this.keys.ingest,
          this.keys.gate,
          this.before > 0,
        ]);
        entered = row?.entered ?? 0;
        pid = row?.pid ?? 0;
      } catch (e) {
        this.dropSession(session);
        throw postgresError(describeServer(this.sql), 'cannot take the ingest lock', e);
      }
      if (entered !== 0) return { pid, joined: entered === 2 };
      if (Date.now() >= deadline) {
        throw new FetchCacheError('ERR_STORE_LOCKED', 'gc has been deleting from the store for too long');
      }
      if (!told) {
        told = true;
        options.onWait?.('waiting for gc to finish');
      }
      await pause();
    }
  }

  /** Drop one hold of INGEST. A session that is gone holds nothing any more: nothing to do then. */
  private async leave(): Promise<void> {
    const session = await this.session().catch(() => undefined);
    if (session === undefined) return;
    try {
      await session.unsafe('select pg_advisory_unlock_shared($1::bigint)', [this.keys.ingest]);
    } catch {
      this.dropSession(session);
    }
  }

  /** The connection of this process's ingests, reserved on first use (again after it failed). */
  private session(): Promise<ReservedSql> {
    this.ingestSession ??= this.reserve();
    const current = this.ingestSession;
    current.catch(() => {
      if (this.ingestSession === current) this.ingestSession = undefined;
    });
    return current;
  }

  private dropSession(session: ReservedSql): void {
    this.ingestSession = undefined;
    session.release();
  }

  private async reserve(): Promise<ReservedSql> {
    try {
      return await this.sessions.reserve();
    } catch (e) {
      throw postgresError(describeServer(this.sessions), 'cannot reserve a connection for a lock', e);
    }
  }

  /** Ends a gc phase or turn: its locks dropped, its connection given back (once). */
  private ender(session: ReservedSql): () => Promise<void> {
    let ended: Promise<void> | undefined;
    return () => {
      ended ??= session
        .unsafe('select pg_advisory_unlock_all()')
        .then(
          () => session.release(),
          // A connection that failed has lost its session, and its locks with it: not given back.
          () => {},
        )
        .then(() => {});
      return ended;
    };
  }

  /**
   * Take the advisory lock `key` on `session`, exclusively (or `shared`), polling until `deadline`
   * (ERR_STORE_LOCKED with `why()` past it); `waiting()` is called once, when the first try fails.
   */
  private async acquire(
    session: ReservedSql,
    key: string,
    deadline: number,
    why: () => Promise<string>,
    { waiting, shared = false }: { waiting?: () => Promise<void>; shared?: boolean } = {},
  ): Promise<void> {
    let told = false;
    for (;;) {
      let ok: boolean;
      try {
        const [row] = await session.unsafe<{ ok: boolean }[]>(
          shared
            ? 'select pg_try_advisory_lock_shared($1::bigint) as ok'
            : 'select pg_try_advisory_lock($1::bigint) as ok',
          [key],
        );
        ok = row?.ok === true;
      } catch (e) {
        throw postgresError(describeServer(this.sessions), 'cannot take an advisory lock', e);
      }
      if (ok) return;
      if (Date.now() >= deadline) throw new FetchCacheError('ERR_STORE_LOCKED', await why());
      if (!told) {
        told = true;
        await waiting?.();
      }
      await pause();
    }
  }

  /** Sessions holding INGEST in `mode` now (for messages; '?' when it cannot be told). */
  private async holders(mode: 'ShareLock' | 'ExclusiveLock'): Promise<string> {
    try {
      const [row] = await this.sql.unsafe<{ n: number }[]>(HOLDERS, [this.keys.ingest, mode]);
      return String(row?.n ?? '?');
    } catch {
      return '?';
    }
  }

  private async renew(): Promise<void> {
    if (this.holds.size === 0) return;
    try {
      await this.query(
        'renew held paths',
        'update use_leases set expires_at = now() + make_interval(secs => $2::float8 / 1000) where id = any($1::bigint[])',
        [[...this.holds], this.holdTtlMs],
      );
    } catch {
      // the next renewal tries again; a lease that expires meanwhile only lets gc evict its path
    }
  }

  private stopRenewing(): void {
    if (this.renewer !== undefined) clearInterval(this.renewer);
    this.renewer = undefined;
  }

  /** Uses noted while one batch is written go into the next; a failed write is dropped (service.ts). */
  private async drain(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pendingUses.size > 0) {
      const batch = [...this.pendingUses].slice(0, USES_PER_BATCH);
      for (const [hex] of batch) this.pendingUses.delete(hex);
      try {
        await this.query(
          'record uses',
          `insert into path_uses (path, used_at) select * from unnest($1::bytea[], $2::bigint[])
           on conflict (path) do update set used_at = excluded.used_at`,
          [batch.map(([hex]) => Buffer.from(hex, 'hex')), batch.map(([, ms]) => String(ms))],
        );
      } catch {
        // dropped
      }
    }
    this.writing = undefined;
  }

  private async query<T extends object>(what: string, text: string, params: unknown[]): Promise<T[]> {
    try {
      return await this.sql.unsafe<T[]>(text, params as never[], { prepare: true });
    } catch (e) {
      throw postgresError(describeServer(this.sql), what, e);
    }
  }
}
