/**
 * The PostgreSQL foundations of a `postgres://` store: the connection pool and
 * the versioned schema. The client is postgres.js (`postgres`: one package, no
 * dependencies, pipelined queries), imported on first use so that a process
 * that never opens a postgres:// store never loads it.
 *
 * Schema versions live in the database (`schema_version`, one row per applied
 * migration). `MIGRATIONS` is the ordered list of SQL scripts this code knows:
 * version N means the first N have been applied. `migrate()` (what
 * `fetch-cache migrate` runs) applies the missing ones in one transaction
 * under a transaction-level advisory lock, so concurrent migrations from
 * several machines serialise and a failed one leaves the schema as it was.
 * `openPostgres()` never migrates: a schema older than the code is refused
 * with ERR_STORE_MIGRATE (the operator runs `fetch-cache migrate`, once, from
 * any machine), a newer one with ERR_STORE_VERSION (this code would misread
 * it). Migrations are append-only: a released one is never edited.
 *
 * Failures of the server or the connection are ERR_STORE_BACKEND; messages
 * name the server with the password blanked out.
 */

import type { ISql, Sql } from 'postgres';
import { FetchCacheError } from '../errors.js';

/**
 * The schema, in order. Version 1 is only the version table itself; the
 * store's tables come as later versions.
 */
export const MIGRATIONS: readonly string[] = [
  `create table schema_version (
     version integer primary key,
     applied_at timestamptz not null default now()
   );
   comment on table schema_version is 'fetch-cache: one row per applied migration; the highest is the schema version'`,

  // 2: the metadata as one key-value table (storage/pg-level.ts), and the path-info generation.
  `create table kv (
     key bytea primary key,
     value bytea not null
   );
   comment on table kv is 'fetch-cache: the store''s metadata, key-value pairs in memcmp (bytea) order; a key is "!sublevel!" then the sublevel''s own key; read one sublevel with kv_sublevel(name)';

   create function kv_sublevel(name text) returns table (key bytea, value bytea)
     language sql stable set search_path from current
     as $$ select substring(kv.key from octet_length(name) + 3), kv.value from kv
           where kv.key >= convert_to('!' || name || '!', 'UTF8') and kv.key < convert_to('!' || name || '"', 'UTF8')
           order by kv.key $$;
   comment on function kv_sublevel(text) is 'fetch-cache: the entries of one sublevel of kv, keys without the prefix (select * from kv_sublevel(''pathinfo''))';

   create table pathinfo_generation (
     one boolean primary key default true check (one),
     generation bigint not null
   );
   insert into pathinfo_generation (generation) values (0);
   comment on table pathinfo_generation is 'fetch-cache: bumped in the transaction of every write to the pathinfo sublevel of kv, then NOTIFY fetch_cache_pathinfo with the new value';

   create function pathinfo_changed() returns trigger
     language plpgsql set search_path from current
     as $$
     declare g bigint;
     begin
       if current_setting('fetch_cache.pathinfo_bumped', true) is distinct from 'on' then
         update pathinfo_generation set generation = generation + 1 returning generation into g;
         perform pg_notify('fetch_cache_pathinfo', g::text);
         perform set_config('fetch_cache.pathinfo_bumped', 'on', true);
       end if;
       return null;
     end $$;

   create trigger kv_pathinfo_inserted after insert on kv for each row
     when (substring(new.key for 10) = '!pathinfo!'::bytea) execute function pathinfo_changed();
   create trigger kv_pathinfo_updated after update on kv for each row
     when (substring(new.key for 10) = '!pathinfo!'::bytea or substring(old.key for 10) = '!pathinfo!'::bytea)
     execute function pathinfo_changed();
   create trigger kv_pathinfo_deleted after delete on kv for each row
     when (substring(old.key for 10) = '!pathinfo!'::bytea) execute function pathinfo_changed();
   create trigger kv_truncated after truncate on kv for each statement execute function pathinfo_changed()`,

  // 3: what the store records about itself, and the coordination rows (coordination/postgres.ts).
  `create table store_settings (
     one boolean primary key default true check (one),
     store_dir text not null
   );
   comment on table store_settings is 'fetch-cache: the store dir the store''s paths are made for, recorded by its first opener';

   create table path_uses (
     path bytea primary key,
     used_at bigint not null
   );
   comment on table path_uses is 'fetch-cache: the last use of each path (20-byte store path digest), ms since the epoch, for gc --max-size';

   create table use_leases (
     id bigserial primary key,
     path bytea not null,
     expires_at timestamptz not null
   );
   create index use_leases_expires_at on use_leases (expires_at);
   comment on table use_leases is 'fetch-cache: paths a reader (a NAR being served) holds; renewed while held, void once expired';

   create table pending_uploads (
     nar_sha256 bytea primary key,
     file_sha256 bytea not null,
     node bytea not null,
     nar_size bigint not null,
     file_size bigint not null,
     compression text not null,
     received_at bigint not null
   );
   create index pending_uploads_file_sha256 on pending_uploads (file_sha256);
   create index pending_uploads_received_at on pending_uploads (received_at);
   comment on table pending_uploads is 'fetch-cache: NARs uploaded to a server (PUT nar), waiting for their narinfo, which may reach another server; void after received_at + 1 hour'`,
];

/** The sublevel whose writes bump `pathinfo_generation` (pathinfo/leveldb.ts PATHINFO_SUBLEVEL, at the root). */
export const PATHINFO_KEY_PREFIX = '!pathinfo!';

/** The channel `pathinfo_generation` is announced on, with the new generation as payload. */
export const PATHINFO_CHANNEL = 'fetch_cache_pathinfo';

/** The current path-info generation (see MIGRATIONS, version 2). */
export async function pathInfoGeneration(sql: ISql): Promise<bigint> {
  const [row] = await sql<{ generation: string }[]>`select generation::text from pathinfo_generation`;
  if (row === undefined) throw new TypeError('pathinfo_generation has no row');
  return BigInt(row.generation);
}

/** Key of the transaction-level advisory lock `migrate()` holds ("fc-migr"). */
const MIGRATE_LOCK = 0x66_63_2d_6d_69_67;

export interface PostgresOptions {
  /** Connections in the pool at most (default 10). */
  readonly max?: number;
  /** Seconds to wait for a connection to the server (default 10). */
  readonly connectTimeoutS?: number;
  /** Seconds after which an idle connection of the pool is closed (default: kept open). */
  readonly idleTimeoutS?: number;
}

/** `url` with its password blanked out, for messages. */
export function redactPostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.href;
  } catch {
    return '(unparsable postgres URL)';
  }
}

/** The server and database `sql` talks to, for messages: `host:port/database`. */
export function describeServer(sql: Sql): string {
  const o = sql.options;
  return `${o.host.map((h, i) => `${h}:${o.port[i] ?? o.port[0]}`).join(',')}/${o.database ?? ''}`;
}

/** ERR_STORE_BACKEND for a failure of `what` against `server` (a redacted URL or describeServer). */
export function postgresError(server: string, what: string, cause: unknown): FetchCacheError {
  if (cause instanceof FetchCacheError) return cause;
  const e = cause as { code?: unknown; message?: unknown };
  const detail = [e?.code, e?.message].filter((x) => typeof x === 'string').join(' ');
  return new FetchCacheError('ERR_STORE_BACKEND', `PostgreSQL at ${server}: ${what}: ${detail}`, { cause });
}

/**
 * A pool of connections to `url` (`postgres://user:password@host:port/database`), checked with one
 * query; ERR_STORE_BACKEND when the server cannot be reached or refuses us. The schema is not
 * checked (openPostgres does that). Close it with `sql.end()`.
 */
export async function connectPostgres(url: string, options: PostgresOptions = {}): Promise<Sql> {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new FetchCacheError('ERR_BAD_URL', `not a postgres:// URL: '${redactPostgresUrl(url)}'`);
  }
  const { default: postgres } = await import('postgres');
  const sql = postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeoutS ?? 10,
    ...(options.idleTimeoutS === undefined ? {} : { idle_timeout: options.idleTimeoutS }),
    onnotice: () => {},
    connection: { application_name: 'fetch-cache' },
  });
  try {
    await sql`select 1`;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw postgresError(redactPostgresUrl(url), 'cannot connect', e);
  }
  return sql;
}

/** The schema version of the database: 0 when it has none yet. */
export async function schemaVersion(sql: ISql): Promise<number> {
  const [row] = await sql<{ exists: boolean }[]>`select to_regclass('schema_version') is not null as exists`;
  if (!row?.exists) return 0;
  const [v] = await sql<{ version: number | null }[]>`select max(version) as version from schema_version`;
  return v?.version ?? 0;
}

/** Refuses a schema this code cannot use: older (ERR_STORE_MIGRATE) or newer (ERR_STORE_VERSION). */
export async function checkSchema(sql: Sql, migrations: readonly string[] = MIGRATIONS): Promise<void> {
  const version = await schemaVersion(sql);
  if (version < migrations.length) {
    throw new FetchCacheError(
      'ERR_STORE_MIGRATE',
      version === 0
        ? 'the PostgreSQL store has no fetch-cache schema yet: run `fetch-cache migrate` to create it'
        : `the PostgreSQL store's schema is version ${version}, this fetch-cache needs ${migrations.length}: run \`fetch-cache migrate\``,
      { expected: String(migrations.length), actual: String(version) },
    );
  }
  if (version > migrations.length) throw newerSchema(version, migrations.length);
}

function newerSchema(version: number, known: number): FetchCacheError {
  return new FetchCacheError(
    'ERR_STORE_VERSION',
    `the PostgreSQL store's schema is version ${version}, newer than this fetch-cache knows (${known}): upgrade fetch-cache`,
    { expected: String(known), actual: String(version) },
  );
}

/**
 * Applies the migrations the database lacks, all in one transaction under an advisory lock (a
 * concurrent `migrate` waits, then finds nothing to do). Returns the versions before and after.
 * A schema newer than the code is refused (ERR_STORE_VERSION); a failing migration rolls back
 * the whole run (ERR_STORE_BACKEND naming its version).
 */
export async function migrate(
  sql: Sql,
  migrations: readonly string[] = MIGRATIONS,
): Promise<{ from: number; to: number }> {
  let step = 'migrate';
  try {
    return await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATE_LOCK}::bigint)`;
      const from = await schemaVersion(tx);
      if (from > migrations.length) throw newerSchema(from, migrations.length);
      for (let v = from + 1; v <= migrations.length; v++) {
        step = `migration to schema version ${v} failed, nothing was applied`;
        await tx.unsafe(migrations[v - 1]!);
        await tx`insert into schema_version (version) values (${v})`;
      }
      step = 'migrate: commit failed, nothing was applied';
      return { from, to: migrations.length };
    });
  } catch (e) {
    throw postgresError(describeServer(sql), step, e);
  }
}

/** A pool to `url` whose schema is exactly what this code knows (see checkSchema). */
export async function openPostgres(
  url: string,
  options: PostgresOptions & { migrations?: readonly string[] } = {},
): Promise<Sql> {
  const sql = await connectPostgres(url, options);
  try {
    await checkSchema(sql, options.migrations ?? MIGRATIONS);
    return sql;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw postgresError(redactPostgresUrl(url), 'cannot read the schema version', e);
  }
}
