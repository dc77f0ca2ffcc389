/**
 * Pending uploads (service.ts `PendingUploads`) as rows of `pending_uploads`
 * (storage/postgres.ts, schema version 3), so that a `PUT nar` received by
 * one server and the `PUT narinfo` that follows, sent by the load balancer
 * to another, meet. The NAR's bytes are in the shared store already (the
 * upload ingested them); a row only says what was received. Rows expire
 * `ttlMs` after they were received (an hour by default) and the newest
 * `capacity` are kept; expired rows are ignored by every read and deleted by
 * the next `add`. Nothing here needs a process to stay alive: a server
 * killed between the two requests leaves a row another server can use.
 */

import type { Sql } from 'postgres';
import { decodeAnonymousEntry, encodeEntry } from '../castore/nodes.js';
import { describeServer, postgresError } from '../storage/postgres.js';
import { PENDING_TTL_MS, PENDING_UPLOADS } from './memory.js';
import type { PendingUpload, PendingUploads } from './service.js';

interface Row {
  nar_sha256: Uint8Array;
  file_sha256: Uint8Array;
  node: Uint8Array;
  nar_size: string;
  file_size: string;
  compression: string;
  received_at: string;
}

const COLUMNS = 'nar_sha256, file_sha256, node, nar_size, file_size, compression, received_at';
const EMPTY_NAME = new Uint8Array(0);
const bytes = (b: Uint8Array) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

function fromRow(r: Row): PendingUpload {
  return {
    node: decodeAnonymousEntry(bytes(r.node)),
    narSha256: bytes(r.nar_sha256),
    narSize: Number(r.nar_size),
    fileSha256: bytes(r.file_sha256),
    fileSize: Number(r.file_size),
    compression: r.compression,
    receivedAt: Number(r.received_at),
  };
}

export class PgPendingUploads implements PendingUploads {
  constructor(
    private readonly sql: Sql,
    private readonly capacity = PENDING_UPLOADS,
    private readonly ttlMs = PENDING_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  async add(p: PendingUpload): Promise<void> {
    await this.query(
      'add a pending upload',
      `insert into pending_uploads (${COLUMNS}) values ($1::bytea, $2::bytea, $3::bytea, $4, $5, $6, $7)
       on conflict (nar_sha256) do update set file_sha256 = excluded.file_sha256, node = excluded.node,
         nar_size = excluded.nar_size, file_size = excluded.file_size,
         compression = excluded.compression, received_at = excluded.received_at`,
      [
        p.narSha256,
        p.fileSha256,
        encodeEntry(EMPTY_NAME, p.node),
        p.narSize,
        p.fileSize,
        p.compression,
        p.receivedAt,
      ],
    );
    await this.query(
      'drop expired pending uploads',
      `delete from pending_uploads where received_at < $1 or nar_sha256 in
         (select nar_sha256 from pending_uploads order by received_at desc, nar_sha256 offset $2)`,
      [this.limit(), this.capacity],
    );
  }

  async byNarHash(narSha256: Uint8Array): Promise<PendingUpload | undefined> {
    const rows = await this.query<Row>(
      'find a pending upload',
      `select ${COLUMNS} from pending_uploads where nar_sha256 = $1::bytea and received_at >= $2`,
      [narSha256, this.limit()],
    );
    return rows[0] === undefined ? undefined : fromRow(rows[0]);
  }

  async byFileHash(fileSha256: Uint8Array): Promise<PendingUpload | undefined> {
    const rows = await this.query<Row>(
      'find a pending upload',
      `select ${COLUMNS} from pending_uploads where file_sha256 = $1::bytea and received_at >= $2
       order by received_at desc limit 1`,
      [fileSha256, this.limit()],
    );
    return rows[0] === undefined ? undefined : fromRow(rows[0]);
  }

  async remove(p: PendingUpload): Promise<void> {
    await this.query(
      'remove a pending upload',
      'delete from pending_uploads where nar_sha256 = $1::bytea and received_at = $2 and file_sha256 = $3::bytea',
      [p.narSha256, p.receivedAt, p.fileSha256],
    );
  }

  async count(): Promise<number> {
    const [row] = await this.query<{ n: string }>(
      'count pending uploads',
      'select count(*)::text as n from pending_uploads where received_at >= $1',
      [this.limit()],
    );
    return Number(row?.n ?? 0);
  }

  /** Uploads received before this are void. */
  private limit(): number {
    return this.now() - this.ttlMs;
  }

  private async query<T extends object>(what: string, text: string, params: unknown[]): Promise<T[]> {
    try {
      return await this.sql.unsafe<T[]>(text, params as never[], { prepare: true });
    } catch (e) {
      throw postgresError(describeServer(this.sql), what, e);
    }
  }
}
