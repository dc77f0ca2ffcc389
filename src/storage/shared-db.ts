/**
 * Opening the LevelDB of a cache root when several processes use the root at
 * once (docs/operating.md, "Many processes, one root"). LevelDB admits one opener; the
 * composition root says how to open it (`OpenDatabase`), so nothing here
 * knows the backend. The first process to open it becomes the host: it uses the
 * database directly and serves it to the others over a unix socket in the
 * root (db-host.ts). A process that finds the database locked becomes a
 * guest: it reaches the database through the socket (remote-level.ts), and
 * when the host exits it fails over to the next host or hosts itself
 * (link.ts). Only when the lock is held and nobody answers on the socket (an
 * older fetch-cache, or a process stuck while opening) does it wait, for a
 * bounded, reported time, then fail with ERR_STORE_LOCKED naming the owner.
 *
 * The socket is `<root>/db.sock`; a root whose path is too long for a unix
 * socket address (~107 bytes) uses `<tmpdir>/fetch-cache-<sha256 of the root>.sock`.
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '../nix/hashing.js';
import { type DbHost, hostDatabase } from './db-host.js';
import type { KV } from './kv.js';
import type { Link, OpenDatabase } from './link.js';

export type { OpenDatabase } from './link.js';

export interface SharedDbOptions {
  /** The database's location, for messages. */
  readonly location: string;
  /** Opens the database, or says another process holds it (the composition root chooses the backend). */
  readonly open: OpenDatabase;
  /** Longest wait for a host or the lock (default 10 s). */
  readonly timeoutMs?: number | undefined;
  readonly owner: () => string;
  readonly onWait?: ((owner: string) => void) | undefined;
  /** Told when this process starts or stops hosting the database. */
  readonly onHost?: ((hosting: boolean) => void) | undefined;
}

export interface SharedDb {
  readonly db: KV;
  /** Whether this process hosts the database now (it may start hosting later, after a failover). */
  hosting(): boolean;
  close(): Promise<void>;
}

const MAX_SOCKET_PATH = 100;
const BINARY = { keyEncoding: 'view', valueEncoding: 'view' } as const;

export function socketPathFor(root: string): string {
  const inRoot = join(root, 'db.sock');
  if (Buffer.byteLength(inRoot) <= MAX_SOCKET_PATH) return inRoot;
  const digest = Buffer.from(sha256(Buffer.from(root, 'utf8')))
    .toString('hex')
    .slice(0, 32);
  return join(tmpdir(), `fetch-cache-${digest}.sock`);
}

export async function openSharedDb(root: string, options: SharedDbOptions): Promise<SharedDb> {
  const socketPath = socketPathFor(root);
  const level = await options.open();
  if (level === undefined) return openGuest(socketPath, options);
  let host: DbHost;
  try {
    host = await hostDatabase(level, socketPath);
  } catch (e) {
    await level.close();
    throw e;
  }
  options.onHost?.(true);
  let closing: Promise<void> | undefined;
  return {
    db: level,
    hosting: () => closing === undefined,
    close: () => {
      closing ??= (async () => {
        await host.close();
        await level.close();
        options.onHost?.(false);
      })();
      return closing;
    },
  };
}

/** A guest's side: loaded only when another process holds the database. */
async function openGuest(socketPath: string, options: SharedDbOptions): Promise<SharedDb> {
  const [{ Link }, { RemoteLevel }] = await Promise.all([import('./link.js'), import('./remote-level.js')]);
  let link: Link | undefined;
  const db = new RemoteLevel(async () => {
    link = await Link.open({
      location: options.location,
      open: options.open,
      socketPath,
      timeoutMs: options.timeoutMs ?? 10_000,
      owner: options.owner,
      onWait: options.onWait,
      onHost: options.onHost,
    });
    return link;
  }, BINARY);
  try {
    await db.open();
  } catch (e) {
    // abstract-level wraps what _open threw (ERR_STORE_LOCKED, a damaged database…): hand that on.
    throw (e as { cause?: unknown }).cause ?? e;
  }
  return {
    db: db as unknown as KV,
    hosting: () => link?.hosting === true,
    close: () => db.close(),
  };
}
