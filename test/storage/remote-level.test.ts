/**
 * abstract-level's own test suite (shipped in the package: abstract-level/test)
 * against RemoteLevel on a live host. Every database the suite asks for is a
 * fresh LevelDB hosted in this process on a unix socket (storage/db-host.ts),
 * and the RemoteLevel reaches it only through that socket: its link is given
 * an opener that never opens the database itself. Closing the RemoteLevel
 * stops its host; opening it again starts one on the same files.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AbstractDatabaseOptions } from 'abstract-level';
import { afterAll, describe } from 'vitest';
import { openLevelDb } from '../../src/backends/level-db.js';
import { hostDatabase } from '../../src/storage/db-host.js';
import { Link } from '../../src/storage/link.js';
import { RemoteLevel } from '../../src/storage/remote-level.js';
import { tapeTests } from '../helpers/tape.js';

const require = createRequire(import.meta.url);
const suite = require('abstract-level/test') as (options: {
  test: unknown;
  factory: (options?: AbstractDatabaseOptions<Uint8Array, Uint8Array>) => RemoteLevel;
}) => void;

const dir = mkdtempSync(join(tmpdir(), 'fc-abstract-'));
const running = new Set<() => Promise<void>>();
let made = 0;

afterAll(async () => {
  for (const stop of [...running]) await stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A RemoteLevel whose database is hosted (on its first open) by a host of its own. */
class HostedRemoteLevel extends RemoteLevel {
  private stopHost: (() => Promise<void>) | undefined;

  constructor(location: string, options: AbstractDatabaseOptions<Uint8Array, Uint8Array> = {}) {
    const socketPath = `${location}.sock`;
    super(async () => {
      const db = await openLevelDb(location);
      if (db === undefined) throw new Error(`${location} is locked`);
      const host = await hostDatabase(db, socketPath);
      const stop = async () => {
        running.delete(stop);
        await host.close();
        await db.close();
      };
      running.add(stop);
      this.stopHost = stop;
      return Link.open({
        location,
        open: async () => undefined, // never host itself: every request goes over the socket
        socketPath,
        timeoutMs: 5_000,
        owner: () => 'the test host',
      });
    }, options);
  }

  override async _close(): Promise<void> {
    await super._close();
    await this.stopHost?.();
    this.stopHost = undefined;
  }
}

describe('abstract-level test suite on RemoteLevel over a live host', () => {
  suite({
    test: tapeTests(),
    factory: (options) => new HostedRemoteLevel(join(dir, `db-${made++}`), options) as RemoteLevel,
  });
});
