/**
 * A snapshot of what the cache holds, for the index page and the /metrics
 * gauges: every path's base name, NAR size and NAR hash, plus totals. A scan
 * decodes every path info, so snapshots are reused for `maxAgeMs` (default
 * 10 s) and refreshed at once after an upload; concurrent callers share one
 * scan.
 */

import { encodeNix32 } from '../nix/nixbase32.js';
import { storePathBaseName, storePathHashPart } from '../nix/store-path.js';
import type { PathInfoService } from '../pathinfo/service.js';

export interface PathSummary {
  readonly baseName: string;
  readonly hashPart: string;
  readonly narSize: number;
  readonly narHash: string;
  readonly contentAddressed: boolean;
}

export interface StoreSnapshot {
  readonly paths: readonly PathSummary[];
  readonly narBytes: number;
  readonly takenAt: number;
}

export class StoreStats {
  private current: StoreSnapshot | undefined;
  private scanning: Promise<StoreSnapshot> | undefined;

  constructor(
    private readonly pathInfos: PathInfoService,
    private readonly maxAgeMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async snapshot(): Promise<StoreSnapshot> {
    const c = this.current;
    if (c !== undefined && this.now() - c.takenAt < this.maxAgeMs) return c;
    this.scanning ??= this.scan().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  /** The last snapshot, if any, without scanning (for cheap gauges). */
  peek(): StoreSnapshot | undefined {
    return this.current;
  }

  invalidate(): void {
    this.current = undefined;
  }

  private async scan(): Promise<StoreSnapshot> {
    const paths: PathSummary[] = [];
    let narBytes = 0;
    for await (const info of this.pathInfos.list()) {
      narBytes += info.narSize;
      paths.push({
        baseName: storePathBaseName(info.storePath),
        hashPart: storePathHashPart(info.storePath),
        narSize: info.narSize,
        narHash: encodeNix32(info.narSha256),
        contentAddressed: info.ca !== undefined,
      });
    }
    paths.sort((a, b) => (a.baseName < b.baseName ? -1 : a.baseName > b.baseName ? 1 : 0));
    this.current = { paths, narBytes, takenAt: this.now() };
    return this.current;
  }
}
