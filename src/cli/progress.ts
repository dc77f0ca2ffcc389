/**
 * A one-line progress display for downloads on stderr: label, bytes (of the
 * total when known), percentage and rate, redrawn in place. Only when stderr
 * is a TTY and `--quiet` is not given (docs/cli.md: progress never reaches pipes or
 * logs); otherwise every call is a no-op.
 */

import type { ProgressEvent } from '../fetchers/types.js';

export interface ProgressLine {
  readonly enabled: boolean;
  update(e: ProgressEvent): void;
  /** Clear the line (before printing anything else on stderr, and at the end). */
  clear(): void;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** The text of one progress line, cut to `width` columns. */
export function progressText(e: ProgressEvent, width: number): string {
  const size =
    e.total === undefined ? formatBytes(e.bytes) : `${formatBytes(e.bytes)} / ${formatBytes(e.total)}`;
  const pct = e.total ? ` ${Math.min(100, Math.floor((e.bytes / e.total) * 100))}%` : '';
  const tail = `${pct} ${size} ${formatBytes(Math.round(e.rate))}/s`;
  const room = Math.max(8, width - tail.length - 1);
  const label = e.label.length > room ? `…${e.label.slice(e.label.length - room + 1)}` : e.label;
  return `${label}${tail}`.slice(0, width);
}

export function progressLine(stderr: NodeJS.WritableStream, quiet: boolean): ProgressLine {
  const tty = stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  const enabled = tty.isTTY === true && !quiet;
  let shown = false;
  return {
    enabled,
    update(e) {
      if (!enabled) return;
      stderr.write(`\r\x1b[K${progressText(e, (tty.columns ?? 80) - 1)}`);
      shown = true;
    },
    clear() {
      if (!enabled || !shown) return;
      stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}
