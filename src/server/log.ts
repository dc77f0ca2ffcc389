/**
 * Structured logs: one JSON object per line (`time`, `level`, `msg`, then
 * fields), so `fetch-cache serve` output can go straight into a log
 * collector. Secrets never reach here: callers pass fields, not headers.
 */

/** The level of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The fields of one log line. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** Where the server's log lines go (`jsonLogger`, or your own). */
export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  /** Whether lines of this level are written (callers skip building fields otherwise); absent means yes. */
  wants?(level: LogLevel): boolean;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger writing JSON lines of `minLevel` and above to `stream` (stdout for the CLI). */
export function jsonLogger(
  stream: NodeJS.WritableStream,
  now: () => Date = () => new Date(),
  minLevel: LogLevel = 'debug',
): Logger {
  const min = RANK[minLevel];
  return {
    log(level, msg, fields = {}) {
      if (RANK[level] < min) return;
      const record: Record<string, unknown> = { time: now().toISOString(), level, msg };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
      stream.write(`${JSON.stringify(record)}\n`);
    },
    wants: (level) => RANK[level] >= min,
  };
}

/** Discards everything (library use without logs). */
export const silentLogger: Logger = { log() {}, wants: () => false };

/** Error text for a log line: the code of a FetchCacheError, else the message. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
