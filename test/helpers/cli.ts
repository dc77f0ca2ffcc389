/**
 * Runs the built command line (`node dist/cli/main.js …`) as a child process, the way users and scripts
 * call it. `npm test` builds dist/ first; the tests never import the CLI in-process, so exit codes, stdout
 * and stderr are exactly what a shell would see.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built CLI, which `bin/fetch-cache` imports. */
export const CLI_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** The `fetch-cache` command (package.json `bin`). */
export const CLI_BIN = fileURLToPath(new URL('../../bin/fetch-cache', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** Added to the environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  input?: Uint8Array | string;
  cwd?: string;
}

/** Whether dist/cli/main.js has been built. */
export function cliBuilt(): boolean {
  return existsSync(CLI_MAIN);
}

export function runCli(args: readonly string[], opts: RunCliOptions = {}): Promise<CliResult> {
  return runFile(process.execPath, [CLI_MAIN, ...args], opts);
}

/** Runs `bin/fetch-cache args`, as a shell finds the command. */
export function runBin(args: readonly string[], opts: RunCliOptions = {}): Promise<CliResult> {
  return runFile(CLI_BIN, args, opts);
}

/**
 * Runs any program as `runCli` runs the CLI (stdout and stderr collected, `env` added to this process's,
 * `undefined` removing a variable). With `group`, it runs in a process group of its own, killed once it
 * exits, so that what it started in the background (a shell's `serve &`) goes with it.
 */
export function runCommand(
  file: string,
  args: readonly string[],
  opts: RunCliOptions & { group?: boolean } = {},
): Promise<CliResult> {
  return runFile(file, args, opts);
}

function runFile(
  file: string,
  args: readonly string[],
  opts: RunCliOptions & { group?: boolean },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd ?? REPO_ROOT,
      stdio: 'pipe',
      detached: opts.group === true,
    });
    if (opts.group === true) {
      child.once('close', () => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      });
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
