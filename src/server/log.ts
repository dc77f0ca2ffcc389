/**
 * Structured logs: one JSON object per line (`time`, `level`, `msg`, then
 * fields), so `fetch-cache serve` output can go straight into a log
 * collector. Secrets never reach here: callers pass fields, not headers.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: LogFields): void;
}

/** A logger writing JSON lines to `stream` (stdout for the CLI). */
export function jsonLogger(stream: NodeJS.WritableStream, now: () => Date = () => new Date()): Logger {
  return {
    log(level, msg, fields = {}) {
      const record: Record<string, unknown> = { time: now().toISOString(), level, msg };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
      stream.write(`${JSON.stringify(record)}\n`);
    },
  };
}

/** Discards everything (library use without logs). */
export const silentLogger: Logger = { log() {} };

/** Error text for a log line: the code of a FetchCacheError, else the message. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
