/**
 * An `abstract-level` database in a PostgreSQL table: the KV of a
 * `postgres://` store. The services above stay written over a KV
 * (storage/kv.ts); this is the backend's KV for them. Keys and values are
 * binary (`view`); other encodings are transcoded by abstract-level.
 *
 * Layout (postgres.ts, schema version 2): one table `kv (key bytea primary
 * key, value bytea)`. A sublevel is, as in LevelDB, a key prefix
 * (`!name!`), so sublevels, nested sublevels, ranges across them and
 * deletes by prefix are all ranges of the primary key's btree, whose order
 * (bytea: memcmp, then length) is abstract-level's. One table rather than
 * one per sublevel: abstract-level routes every operation of every
 * sublevel through the root with prefixed keys, so a table per sublevel
 * would mean routing by prefix, merging iterators across tables and DDL for
 * each new sublevel name; the price is the prefix bytes in each row and its
 * index entry. `kv_sublevel('pathinfo')` shows one sublevel in `psql`.
 * Writes to the `pathinfo` sublevel bump `pathinfo_generation` in their
 * transaction and NOTIFY (a trigger; see the migration).
 *
 * - `getMany`/`hasMany`: one `= ANY($1)` query, answered in request order.
 * - `batch`: the last operation per key wins, then upserts and deletes of
 *   many rows per statement (`unnest`), all in one transaction (a single
 *   statement is one by itself). A batch that deletes first locks all its
 *   keys, so concurrent batches apply as if one after the other, as
 *   LevelDB's do (batchStatements). A write that PostgreSQL rolls back to
 *   break a deadlock with another writer is run again.
 * - Iterators read pages with keyset pagination (`key > last ... order by
 *   key limit n`): no cursor or connection is held between pages, so an
 *   iterator sees what was written after it was made (no snapshots:
 *   `implicitSnapshots: false`), never returns a key twice and never skips a
 *   key that stayed in place. `seek` restarts the pages at the target.
 *
 * Connections come from a postgres.js pool (bounded by its `max`), one per
 * query or transaction. Every failure is ERR_STORE_BACKEND naming the
 * server, never the password. A key longer than PostgreSQL's btree limit
 * (about 2.7 kB after compression) is refused by the server.
 */

import { type AbstractDatabaseOptions, AbstractIterator, AbstractLevel } from 'abstract-level';
import type { Sql } from 'postgres';
import {
  checkSchema,
  describeServer,
  openPostgres,
  type PostgresOptions,
  postgresError,
} from './postgres.js';

type Entry = [Uint8Array | undefined, Uint8Array | undefined];

interface RangeOptions {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  reverse?: boolean;
  limit?: number;
}

interface IteratorOptions extends RangeOptions {
  keys?: boolean;
  values?: boolean;
}

interface BatchOp {
  type: 'put' | 'del';
  key: Uint8Array;
  value?: Uint8Array;
}

export interface PgLevelOptions extends AbstractDatabaseOptions<Uint8Array, Uint8Array> {
  /** The pool PgLevel opens from a URL (postgres.ts; default: 10 connections at most). */
  readonly pool?: PostgresOptions;
  /** Entries an iterator reads per query when stepped with `next()` (default 256). */
  readonly pageSize?: number;
}

/** Most entries one `nextv`/`all` page reads. */
const MAX_PAGE = 1000;
/** A batch statement carries at most this many rows and bytes (its parameters travel as hex text). */
const STATEMENT_ROWS = 10_000;
const STATEMENT_BYTES = 16 << 20;
/** Runs of a write that PostgreSQL rolled back to break a deadlock. */
const WRITE_ATTEMPTS = 5;

const view = (b: Uint8Array): Uint8Array =>
  b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const str = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const compare = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);

export class PgLevel extends AbstractLevel<Uint8Array, Uint8Array, Uint8Array> {
  private current: Sql | undefined;
  private readonly pageSize: number;
  private readonly pool: PostgresOptions;

  /**
   * Over the `postgres://` URL `source` (a pool of its own, opened by `open()`, ended by `close()`),
   * or over a pool the caller owns (checked on `open()`, left open by `close()`). The schema must
   * be exactly this code's (postgres.ts checkSchema).
   */
  constructor(
    private readonly source: string | Sql,
    options: PgLevelOptions = {},
  ) {
    super(
      {
        encodings: { view: true },
        has: true,
        seek: true,
        implicitSnapshots: false,
        explicitSnapshots: false,
        permanence: true,
        createIfMissing: false,
        errorIfExists: false,
      },
      levelOptions(options),
    );
    this.pageSize = options.pageSize ?? 256;
    this.pool = options.pool ?? {};
  }

  /** The pool of the open database. */
  get sql(): Sql {
    if (this.current === undefined) throw new TypeError('the database is not open');
    return this.current;
  }

  async _open(): Promise<void> {
    if (typeof this.source === 'string') {
      this.current = await openPostgres(this.source, this.pool);
    } else {
      try {
        await checkSchema(this.source);
      } catch (e) {
        throw postgresError(describeServer(this.source), 'cannot read the schema version', e);
      }
      this.current = this.source;
    }
  }

  async _close(): Promise<void> {
    const sql = this.current;
    this.current = undefined;
    if (sql !== undefined && typeof this.source === 'string') await sql.end({ timeout: 5 });
  }

  /** `fn` over the pool; any failure becomes ERR_STORE_BACKEND about `what`. */
  async run<T>(what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.sql;
    try {
      return await fn(sql);
    } catch (e) {
      throw postgresError(describeServer(sql), what, e);
    }
  }

  /** `text` with `params`, as a prepared statement. */
  query<T extends object>(what: string, text: string, params: unknown[]): Promise<T[]> {
    return this.run(what, (sql) => sql.unsafe<T[]>(text, params as never[], { prepare: true }));
  }

  async _get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const rows = await this.query<{ value: Uint8Array }>(
      'get',
      'select value from kv where key = $1::bytea',
      [key],
    );
    const value = rows[0]?.value;
    return value === undefined ? undefined : view(value);
  }

  async _getMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    const rows = await this.query<{ key: Uint8Array; value: Uint8Array }>(
      'getMany',
      'select key, value from kv where key = any($1::bytea[])',
      [keys],
    );
    const found = new Map<string, Uint8Array>();
    for (const r of rows) found.set(str(r.key), view(r.value));
    return keys.map((k) => found.get(str(k)));
  }

  async _has(key: Uint8Array): Promise<boolean> {
    const rows = await this.query('has', 'select 1 from kv where key = $1::bytea', [key]);
    return rows.length > 0;
  }

  async _hasMany(keys: Uint8Array[]): Promise<boolean[]> {
    const rows = await this.query<{ key: Uint8Array }>(
      'hasMany',
      'select key from kv where key = any($1::bytea[])',
      [keys],
    );
    const found = new Set(rows.map((r) => str(r.key)));
    return keys.map((k) => found.has(str(k)));
  }

  async _put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.write('put', [[UPSERT_ONE, [key, value]]]);
  }

  async _del(key: Uint8Array): Promise<void> {
    await this.write('del', [['delete from kv where key = $1::bytea', [key]]]);
  }

  async _batch(operations: BatchOp[]): Promise<void> {
    await this.write('batch', batchStatements(operations));
  }

  /**
   * Runs `statements` as one transaction (one statement is one by itself), again when PostgreSQL
   * rolled it back to break a deadlock with another writer.
   */
  private async write(what: string, statements: [string, unknown[]][]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (statements.length === 1) {
          const [text, params] = statements[0]!;
          await this.query(what, text, params);
        } else {
          await this.run(what, (sql) =>
            sql.begin(async (tx) => {
              for (const [text, params] of statements)
                await tx.unsafe(text, params as never[], { prepare: true });
            }),
          );
        }
        return;
      } catch (e) {
        if (attempt >= WRITE_ATTEMPTS || !isDeadlock(e)) throw e;
      }
    }
  }

  async _clear(options: RangeOptions): Promise<void> {
    const params: unknown[] = [];
    const where = rangeWhere(options, params);
    const limit = options.limit ?? -1;
    if (limit < 0) {
      await this.write('clear', [[`delete from kv where ${where}`, params]]);
    } else {
      params.push(limit);
      await this.write('clear', [
        [
          `delete from kv where key in (select key from kv where ${where} order by key ${options.reverse ? 'desc' : 'asc'} limit $${params.length})`,
          params,
        ],
      ]);
    }
  }

  _iterator(options: IteratorOptions): PgIterator {
    return new PgIterator(this, options, this.pageSize);
  }
}

/** `options` without PgLevel's own (abstract-level hands the rest to open hooks). */
function levelOptions(options: PgLevelOptions): AbstractDatabaseOptions<Uint8Array, Uint8Array> {
  const { pool: _pool, pageSize: _pageSize, ...rest } = options;
  return rest;
}

const UPSERT_ONE =
  'insert into kv (key, value) values ($1::bytea, $2::bytea) on conflict (key) do update set value = excluded.value';
const UPSERT_MANY =
  'insert into kv (key, value) select * from unnest($1::bytea[], $2::bytea[]) on conflict (key) do update set value = excluded.value';
const DELETE_MANY = 'delete from kv where key = any($1::bytea[])';
/** Locks the rows of `$1`, inserting (empty) those that are absent, for the batch to write. */
const LOCK_MANY =
  "insert into kv (key, value) select k, ''::bytea from unnest($1::bytea[]) as k on conflict (key) do update set value = kv.value where false";

/**
 * The statements of a batch. The last operation on each key decides (operations on distinct keys
 * commute). Rows are written in key order, in statements of bounded size. A batch of several keys
 * that deletes first locks all its keys in one pass in key order, present or not (an upsert that
 * changes nothing, inserting the absent ones), then upserts and deletes: so a batch holds all its
 * keys until it commits, and concurrent batches apply as if one after the other (without the
 * locks, two batches that each delete a key the other puts could both find it absent), and take
 * their locks in the same order (no deadlock between them).
 */
function batchStatements(operations: BatchOp[]): [string, unknown[]][] {
  const last = new Map<string, BatchOp>();
  for (const op of operations) last.set(str(op.key), op);
  const ops = [...last.values()].sort((a, b) => compare(a.key, b.key));
  const dels = ops.filter((op) => op.type === 'del');
  const puts = ops.filter((op) => op.type === 'put');
  const out: [string, unknown[]][] = [];
  if (dels.length > 0 && ops.length > 1) {
    for (const group of groups(ops)) out.push([LOCK_MANY, [group.map((op) => op.key)]]);
  }
  for (const group of groups(puts)) {
    out.push([UPSERT_MANY, [group.map((op) => op.key), group.map((op) => op.value!)]]);
  }
  for (const group of groups(dels)) out.push([DELETE_MANY, [group.map((op) => op.key)]]);
  return out;
}

function* groups(ops: BatchOp[]): Iterable<BatchOp[]> {
  let group: BatchOp[] = [];
  let bytes = 0;
  for (const op of ops) {
    const size = op.key.length + (op.value?.length ?? 0);
    if (group.length > 0 && (group.length >= STATEMENT_ROWS || bytes + size > STATEMENT_BYTES)) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(op);
    bytes += size;
  }
  if (group.length > 0) yield group;
}

function isDeadlock(e: unknown): boolean {
  return (e as { cause?: { code?: unknown } })?.cause?.code === '40P01';
}

/** The SQL condition of a range (abstract-level: gte over gt, lte over lt), its bounds appended to `params`. */
function rangeWhere(range: RangeOptions, params: unknown[]): string {
  const conds: string[] = [];
  const bound = (op: string, key: Uint8Array) => {
    params.push(key);
    conds.push(`key ${op} $${params.length}::bytea`);
  };
  if (range.gte !== undefined) bound('>=', range.gte);
  else if (range.gt !== undefined) bound('>', range.gt);
  if (range.lte !== undefined) bound('<=', range.lte);
  else if (range.lt !== undefined) bound('<', range.lt);
  return conds.length === 0 ? 'true' : conds.join(' and ');
}

class PgIterator extends AbstractIterator<PgLevel, Uint8Array, Uint8Array> {
  private readonly range: RangeOptions;
  private readonly reverse: boolean;
  private readonly wantKeys: boolean;
  private readonly wantValues: boolean;
  /** Where the next page starts: past the last key read, or at a seek target. */
  private from: { key: Uint8Array; inclusive: boolean } | undefined;
  private buffer: [Uint8Array, Uint8Array | undefined][] = [];
  private at = 0;
  /** The last page came back short: nothing more in the range, until a seek. */
  private exhausted = false;

  constructor(
    private readonly level: PgLevel,
    options: IteratorOptions,
    private readonly pageSize: number,
  ) {
    super(level, options as never);
    this.range = options;
    this.reverse = options.reverse === true;
    this.wantKeys = options.keys !== false;
    this.wantValues = options.values !== false;
  }

  async _next(): Promise<Entry | undefined> {
    if (this.at === this.buffer.length) await this.fill(Math.min(this.pageSize, this.limit - this.count));
    return this.take(1)[0];
  }

  async _nextv(size: number): Promise<Entry[]> {
    if (this.at === this.buffer.length) await this.fill(Math.min(size, MAX_PAGE));
    return this.take(size);
  }

  _seek(target: Uint8Array): void {
    this.buffer = [];
    this.at = 0;
    this.exhausted = false;
    this.from = { key: target, inclusive: true };
  }

  private take(n: number): Entry[] {
    const out = this.buffer
      .slice(this.at, this.at + n)
      .map(([k, v]): Entry => [this.wantKeys ? k : undefined, v]);
    this.at += out.length;
    return out;
  }

  private async fill(n: number): Promise<void> {
    this.buffer = [];
    this.at = 0;
    if (this.exhausted || n <= 0) return;
    const params: unknown[] = [];
    let where = rangeWhere(this.range, params);
    if (this.from !== undefined) {
      params.push(this.from.key);
      const op = this.reverse ? (this.from.inclusive ? '<=' : '<') : this.from.inclusive ? '>=' : '>';
      where += ` and key ${op} $${params.length}::bytea`;
    }
    params.push(n);
    const rows = await this.level.query<{ key: Uint8Array; value?: Uint8Array }>(
      'iterator',
      `select key${this.wantValues ? ', value' : ''} from kv where ${where} order by key ${this.reverse ? 'desc' : 'asc'} limit $${params.length}`,
      params,
    );
    if (rows.length < n) this.exhausted = true;
    for (const r of rows) {
      this.buffer.push([view(r.key), r.value === undefined ? undefined : view(r.value)]);
    }
    const lastRow = rows[rows.length - 1];
    if (lastRow !== undefined) this.from = { key: view(lastRow.key), inclusive: false };
  }
}
