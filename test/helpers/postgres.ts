/**
 * Throwaway databases on the test PostgreSQL named by FETCH_CACHE_TEST_POSTGRES
 * (scripts/services/pg-up.sh prints it; .ci/run starts it): each test gets a
 * database of its own, created from the server's template and dropped (with
 * its connections) afterwards, so tests never see each other's schema.
 */

import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

/** The test server's URL, or undefined when there is none. */
export const TEST_POSTGRES = process.env.FETCH_CACHE_TEST_POSTGRES || undefined;

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

export async function freshDatabase(): Promise<TestDatabase> {
  if (TEST_POSTGRES === undefined) throw new Error('FETCH_CACHE_TEST_POSTGRES is unset');
  const name = `fc_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(TEST_POSTGRES, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(TEST_POSTGRES);
  u.pathname = `/${name}`;
  return {
    url: u.href,
    name,
    drop: async () => {
      const a = postgres(TEST_POSTGRES, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
