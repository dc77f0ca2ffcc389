/**
 * PgLevels on the test PostgreSQL (helpers/postgres.ts) that start empty.
 * Suites that want hundreds of fresh databases (abstract-level's own, the
 * service conformance suites) get a PostgreSQL schema each instead, in one
 * database per test file: a schema with this code's migrations applied is
 * as good as a new database for a PgLevel (its connections name it in
 * `search_path`), and costs milliseconds instead of a `create database`.
 */

import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll } from 'vitest';
import { PgLevel, type PgLevelOptions } from '../../src/storage/pg-level.js';
import { migrate } from '../../src/storage/postgres.js';
import { freshDatabase, type TestDatabase } from './postgres.js';

/** `url` whose connections use `schema`. */
export function withSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('search_path', schema);
  return u.href;
}

/** A new schema name. */
export const schemaName = () => `s_${randomBytes(6).toString('hex')}`;

/** Creates `schema` (if it is not there) with this code's migrations in the database at `url`; returns the URL that uses it. */
export async function migratedSchema(url: string, schema = schemaName()): Promise<string> {
  const schemaUrl = withSchema(url, schema);
  const sql = postgres(schemaUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create schema if not exists ${schema}`);
    await migrate(sql);
  } finally {
    await sql.end();
  }
  return schemaUrl;
}

/**
 * A PgLevel on a schema of its own in the database at `url`, created (and migrated) on its
 * first open; it opens a pool of its own (at most 2 connections, closed when idle), and keeps its data
 * across close and re-open.
 */
export class SchemaPgLevel extends PgLevel {
  private migrated = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly schema: string = schemaName(),
    options: PgLevelOptions = {},
  ) {
    // Idle connections close soon: abstract-level's suite leaves some databases open.
    super(withSchema(databaseUrl, schema), { pool: { max: 2, idleTimeoutS: 1 }, ...options });
  }

  override async _open(): Promise<void> {
    if (!this.migrated) await migratedSchema(this.databaseUrl, this.schema);
    this.migrated = true;
    await super._open();
  }
}

/**
 * A database for this test file, created now (abstract-level's suite makes a database while
 * collecting its tests), and a factory of SchemaPgLevels in it. After the file's tests, every
 * PgLevel it made is closed and the database dropped. Call at the top level of a test file.
 */
export async function pgLevelsForFile(): Promise<{
  readonly database: TestDatabase;
  make(options?: PgLevelOptions): PgLevel;
}> {
  const database = await freshDatabase();
  const made = new Set<PgLevel>();
  afterAll(async () => {
    for (const level of made) await level.close().catch(() => {});
    await database.drop();
  });
  return {
    database,
    make: (options) => {
      const level = new SchemaPgLevel(database.url, schemaName(), options) as PgLevel;
      made.add(level);
      return level;
    },
  };
}
