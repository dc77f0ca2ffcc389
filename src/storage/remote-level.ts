/**
 * An `abstract-level` database whose every operation goes over a `Link` to
 * the process hosting the cache root's LevelDB (or runs in-process once this
 * process took the host's place). Services see an ordinary KV: sublevels,
 * batches, iterators. Keys and values travel as binary (`view`); other
 * encodings (utf8 by default, as for any abstract-level) are transcoded by
 * abstract-level. abstract-level's own test suite runs against it on a live
 * host (test/storage/remote-level.test.ts). `open()` makes the link
 * (`connect`), `close()` drops it; a closed RemoteLevel can be opened again.
 *
 * An iterator opens the host's iterator when it is made (so it reads from a
 * snapshot of that moment, as LevelDB's do), fetches entries in pages
 * (`nextv`), seeks on the host, and remembers the last key it returned: when
 * the host changes under it, it reopens just past that key and carries on,
 * losing only the snapshot across the switch.
 */

import { type AbstractDatabaseOptions, AbstractIterator, AbstractLevel } from 'abstract-level';
import { type Link, StaleIteratorError } from './link.js';
import { encodeRange, OPS, type RangeOptions } from './wire.js';

type Entry = [Uint8Array, Uint8Array | undefined];

/** Entries per page for `next()` (`nextv(size)` asks for `size`, up to 4096). */
const PAGE = 256;

export class RemoteLevel extends AbstractLevel<Uint8Array, Uint8Array, Uint8Array> {
  private current: Link | undefined;

  constructor(
    private readonly connect: () => Promise<Link>,
    options: AbstractDatabaseOptions<Uint8Array, Uint8Array> = {},
  ) {
    super(
      {
        encodings: { view: true },
        has: true,
        seek: true,
        implicitSnapshots: true,
        permanence: true,
        explicitSnapshots: false,
        createIfMissing: false,
        errorIfExists: false,
      },
      options,
    );
  }

  /** The link of the open database. */
  get link(): Link {
    if (this.current === undefined) throw new TypeError('the database is not open');
    return this.current;
  }

  async _open(): Promise<void> {
    this.current = await this.connect();
  }

  async _close(): Promise<void> {
    const link = this.current;
    this.current = undefined;
    await link?.close();
  }

  async _get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return (await this.link.request(OPS.get, null, [key])).parts[0];
  }

  async _getMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return (await this.link.request(OPS.getMany, null, keys)).parts;
  }

  async _has(key: Uint8Array): Promise<boolean> {
    return (await this.link.request(OPS.has, null, [key])).head as boolean;
  }

  async _hasMany(keys: Uint8Array[]): Promise<boolean[]> {
    return (await this.link.request(OPS.hasMany, null, keys)).head as boolean[];
  }

  async _put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.link.request(OPS.put, null, [key, value]);
  }

  async _del(key: Uint8Array): Promise<void> {
    await this.link.request(OPS.del, null, [key]);
  }

  async _batch(operations: { type: 'put' | 'del'; key: Uint8Array; value?: Uint8Array }[]): Promise<void> {
    const types: ('put' | 'del')[] = [];
    const parts: Uint8Array[] = [];
    for (const op of operations) {
      types.push(op.type);
      parts.push(op.key);
      if (op.type === 'put') parts.push(op.value!);
    }
    await this.link.request(OPS.batch, types, parts);
  }

  async _clear(options: RangeOptions): Promise<void> {
    const { head, parts } = encodeRange(options);
    await this.link.request(OPS.clear, head, parts);
  }

  _iterator(options: RangeOptions & { keys?: boolean; values?: boolean }): RemoteIterator {
    return new RemoteIterator(this, options);
  }
}

class RemoteIterator extends AbstractIterator<RemoteLevel, Uint8Array, Uint8Array> {
  private range: RangeOptions;
  private readonly wantValues: boolean;
  /** The host's iterator, once open; `opening` while its request is out. */
  private remote: Remote | undefined;
  private opening: Promise<Remote> | undefined;
  /** A seek sent to the host, awaited before the next page. */
  private seeking: Promise<unknown> | undefined;
  private buffer: Entry[] = [];
  private last: Uint8Array | undefined;
  private ended = false;

  constructor(
    private readonly level: RemoteLevel,
    options: RangeOptions & { keys?: boolean; values?: boolean },
  ) {
    super(level, options as never);
    this.range = {
      ...(options.gt === undefined ? {} : { gt: options.gt }),
      ...(options.gte === undefined ? {} : { gte: options.gte }),
      ...(options.lt === undefined ? {} : { lt: options.lt }),
      ...(options.lte === undefined ? {} : { lte: options.lte }),
      reverse: options.reverse === true,
      // abstract-level counts entries against the limit itself, across seeks: the host reads on.
      limit: -1,
    };
    this.wantValues = options.values !== false;
    // Opened now, so that the host's iterator (and its snapshot) predates later writes of this process:
    // the host handles one connection's requests in order.
    this.open();
  }

  async _next(): Promise<Entry | undefined> {
    if (this.buffer.length === 0) await this.fill(PAGE);
    return this.buffer.shift();
  }

  async _nextv(size: number): Promise<Entry[]> {
    if (this.buffer.length === 0) await this.fill(Math.max(1, Math.min(size, 4096)));
    return this.buffer.splice(0, size);
  }

  _seek(target: Uint8Array): void {
    this.buffer = [];
    this.last = undefined;
    this.ended = false;
    this.range = seekRange(this.range, target);
    const opened = this.opening ?? Promise.resolve(this.remote);
    const link = this.level.link;
    this.seeking = opened
      .then((r) =>
        r === undefined || r.epoch !== link.epoch
          ? undefined
          : link.request(OPS.iterSeek, { it: r.id }, [target]),
      )
      .catch(() => {}); // a host gone meanwhile: the iterator reopens from the new range
  }

  async _close(): Promise<void> {
    const r = this.remote ?? (await this.opening?.catch(() => undefined));
    this.remote = undefined;
    this.opening = undefined;
    if (r !== undefined && r.id !== 0 && r.epoch === this.level.link.epoch) {
      await this.level.link.request(OPS.iterClose, { it: r.id }, []).catch(() => {});
    }
  }

  /** Fetch the next page, reopening past the last key if the host changed. */
  private async fill(size: number): Promise<void> {
    if (this.ended) return;
    for (let attempt = 0; ; attempt++) {
      try {
        const link = this.level.link;
        if (this.opening !== undefined) this.remote = await this.opening;
        this.opening = undefined;
        await this.seeking;
        this.seeking = undefined;
        if (this.remote === undefined || this.remote.epoch !== link.epoch) {
          this.open();
          continue;
        }
        const reply = await link.request(OPS.iterNext, { it: this.remote.id, size }, []);
        const n = reply.head as number;
        if (n === 0) this.ended = true;
        for (let i = 0; i < n; i++) {
          const key = reply.parts[2 * i]!;
          this.buffer.push([key, this.wantValues ? reply.parts[2 * i + 1] : undefined]);
          this.last = key;
        }
        return;
      } catch (e) {
        if (!(e instanceof StaleIteratorError) || attempt > 20) throw e;
        this.remote = undefined;
        this.opening = undefined;
      }
    }
  }

  /** Open the host's iterator: the range, past the last key returned when it is reopened after a host change. */
  private open(): void {
    const range: RangeOptions = { ...this.range };
    if (this.last !== undefined) {
      if (range.reverse) {
        delete range.lte;
        range.lt = this.last;
      } else {
        delete range.gte;
        range.gt = this.last;
      }
    }
    const link = this.level.link;
    const epoch = link.epoch;
    const { head, parts } = encodeRange(range);
    this.remote = undefined;
    this.opening = link
      .request(OPS.iterOpen, { ...head, values: this.wantValues }, parts)
      .then((reply) => ({ id: reply.head as number, epoch }));
    this.opening.catch(() => {}); // awaited (and its error seen) by the next fill
  }
}

interface Remote {
  readonly id: number;
  readonly epoch: number;
}

const compare = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);

/** The range after a seek to `target`: from the target on, within the original bounds. */
function seekRange(range: RangeOptions, target: Uint8Array): RangeOptions {
  const out: RangeOptions = { ...range };
  if (!range.reverse) {
    const below =
      (range.gt !== undefined && compare(target, range.gt) <= 0) ||
      (range.gte !== undefined && compare(target, range.gte) < 0);
    if (!below) {
      delete out.gt;
      out.gte = target;
    }
  } else {
    const above =
      (range.lt !== undefined && compare(target, range.lt) >= 0) ||
      (range.lte !== undefined && compare(target, range.lte) > 0);
    if (!above) {
      delete out.lt;
      out.lte = target;
    }
  }
  return out;
}
