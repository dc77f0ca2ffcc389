/**
 * Long-running fetch-cache processes for the many-processes and crash
 * tests: `fetch-cache serve` on a random port (its JSON "listening" log line
 * gives the URL), a plain process that holds a root open with `openCache`
 * (what any long-running user of the library does), and a CLI run that can
 * be SIGKILLed after a delay. Everything is killed by its own pid.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_MAIN, REPO_ROOT } from './cli.js';

export interface Running {
  readonly child: ChildProcess;
  /** Resolves with the exit code (or 128 + signal number-ish when killed). */
  readonly exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function track(child: ChildProcess): Running {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    child,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** `fetch-cache ARGS` as a child process (not awaited). */
export function startCli(args: readonly string[], env: Record<string, string> = {}): Running {
  return track(
    spawn(process.execPath, [CLI_MAIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env } }),
  );
}

/** `fetch-cache serve` on 127.0.0.1, random port; resolves once it listens. */
export function startServe(root: string, extra: readonly string[] = []): Promise<Running & { url: string }> {
  return startServing(['--root', root, ...extra]);
}

/** `fetch-cache serve ARGS` on 127.0.0.1, random port, `env` added; resolves once it listens. */
export async function startServing(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Running & { url: string }> {
  const r = startCli(['serve', ...args, '--bind', '127.0.0.1:0'], env);
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${text}`)), 60_000);
    r.child.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /"msg":"listening","url":"([^"]+)"/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void r.exited.then((e) => reject(new Error(`serve exited ${e.code}: ${e.stderr}`)));
  });
  return { ...r, url };
}

/** A process holding `root` open with openCache until stopped. */
export async function startHolder(root: string): Promise<Running> {
  const script = join(root, '..', `holder-${process.pid}-${Date.now()}.mjs`);
  writeFileSync(
    script,
    `import { openCache } from ${JSON.stringify(join(REPO_ROOT, 'dist/cache.js'))};
     const c = await openCache({ root: ${JSON.stringify(root)} });
     console.log('ready');
     process.on('SIGTERM', async () => { await c.close(); process.exit(0); });
     setInterval(() => {}, 1000);`,
  );
  const r = track(spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await new Promise<void>((resolve, reject) => {
    r.child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    void r.exited.then((e) => reject(new Error(`holder exited ${e.code}: ${e.stderr}`)));
  });
  return r;
}
