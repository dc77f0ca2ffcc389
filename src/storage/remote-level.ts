/**
 * An `abstract-level` database whose every operation goes over a `Link` to
 * the process hosting the cache root's LevelDB (or runs in-process once this
 * process took the host's place). Services see an ordinary KV: sublevels,
 * batches, iterators. Keys and values are binary (`view`) throughout.
 *
 * Iterators fetch entries in pages (`nextv`) and remember the last key they
 * returned, so when the host changes under them they reopen just past it and
 * carry on; what they lose is only the implicit snapshot across the switch.
 */

import { AbstractIterator, AbstractLevel } from 'abstract-level';
import { type Link, StaleIteratorError } from './link.js';
import { encodeRange, OPS, type RangeOptions } from './wire.js';

type Entry = [Uint8Array, Uint8Array | undefined];

const PAGE = 256;

export class RemoteLevel extends AbstractLevel<Uint8Array, Uint8Array, Uint8Array> {
  constructor(readonly link: Link) {
    super(
      { encodings: { view: true }, has: true, seek: false, permanence: true, explicitSnapshots: false },
      { keyEncoding: 'view', valueEncoding: 'view' },
    );
  }

  async _close(): Promise<void> {
    await this.link.close();
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
  private readonly range: RangeOptions;
  private readonly wantValues: boolean;
  private remote: { id: number; epoch: number } | undefined;
  private buffer: Entry[] = [];
  private last: Uint8Array | undefined;
  private seen = 0;
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
      limit: options.limit ?? -1,
    };
    this.wantValues = options.values !== false;
  }

  async _next(): Promise<Entry | undefined> {
    if (this.buffer.length === 0) await this.fill(PAGE);
    return this.buffer.shift();
  }

  async _nextv(size: number): Promise<Entry[]> {
    if (this.buffer.length === 0) await this.fill(Math.max(1, Math.min(size, 4096)));
    return this.buffer.splice(0, size);
  }

  async _close(): Promise<void> {
    const r = this.remote;
    this.remote = undefined;
    if (r !== undefined && r.epoch === this.level.link.epoch) {
      await this.level.link.request(OPS.iterClose, { it: r.id }, []).catch(() => {});
    }
  }

  /** Fetch the next page, reopening past the last key if the host changed. */
  private async fill(size: number): Promise<void> {
    if (this.ended) return;
    for (let attempt = 0; ; attempt++) {
      try {
        const link = this.level.link;
        if (this.remote === undefined || this.remote.epoch !== link.epoch) await this.reopen();
        if (this.ended) return;
        const reply = await link.request(OPS.iterNext, { it: this.remote!.id, size }, []);
        const n = reply.head as number;
        if (n === 0) this.ended = true;
        for (let i = 0; i < n; i++) {
          const key = reply.parts[2 * i]!;
          this.buffer.push([key, this.wantValues ? reply.parts[2 * i + 1] : undefined]);
          this.last = key;
        }
        this.seen += n;
        return;
      } catch (e) {
        if (!(e instanceof StaleIteratorError) || attempt > 20) throw e;
        this.remote = undefined;
      }
    }
  }

  private async reopen(): Promise<void> {
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
    if (range.limit !== undefined && range.limit >= 0) range.limit = Math.max(0, range.limit - this.seen);
    if (range.limit === 0) {
      this.ended = true;
      this.remote = { id: 0, epoch: this.level.link.epoch };
      return;
    }
    const epoch = this.level.link.epoch;
    const { head, parts } = encodeRange(range);
    const reply = await this.level.link.request(OPS.iterOpen, { ...head, values: this.wantValues }, parts);
    this.remote = { id: reply.head as number, epoch };
  }
}
