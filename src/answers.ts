/**
 * Answers: what lets `bin/fetch-cache` answer a repeated pinned fetch without
 * starting Node. Node alone starts in ~45 ms here and the whole CLI, with the
 * database open, in ~200 ms; `builtins.fetchGit` of an already-fetched rev
 * takes ~50 ms. The answer to a pinned fetch (`fetch git --rev`, any `fetch`
 * with `--hash`) cannot change while its path info stays as it is, so the CLI
 * keeps what it printed, and the launcher (an `sh` script) prints it again
 * from a file with shell builtins only.
 *
 * Layout under the cache root:
 *
 *   answers/epoch                      one line: the current epoch token
 *   answers/<epoch>-<build>/<name>     line 1: the hex store path digest; then the exact stdout
 *   answers/used/<hex digest>          its mtime: when the launcher last answered for the path
 *
 * - `<build>` is `dist/cli-bundle/build-id` (scripts/bundle-cli.mjs: a hash of
 *   the bundle), so a rebuilt CLI never reuses answers of another build. Only
 *   the bundled CLI writes answers (the unbundled dist/ has no build id).
 * - `<name>` is the command line minus `--root DIR`/`--root=DIR` (the root is
 *   where the file is), each argument with `%` → `%25` and `/` → `%2F`, joined
 *   by `%+` (`answerName`; the launcher computes the same in `sh`). Longer
 *   than 250 bytes, or an argument with a newline or `--`: no answer.
 * - Invalidation: deleting a path info, or replacing it with a different one
 *   (gc, verify, an upload), retires every answer (`retireAnswers`: a new
 *   epoch, the old directories removed). Adding path infos retires nothing:
 *   no answer can name a path that did not exist. A writer takes the epoch
 *   before it looks anything up and re-reads it after writing; if it changed
 *   meanwhile (a gc in another process on the shared database), it removes
 *   what it wrote.
 * - Uses: the launcher truncates `used/<digest>` when it answers, and
 *   `gc --max-size` counts that mtime as a use (ops/usage.ts), as a fetch
 *   through Node records one.
 *
 * Answers are a cache of a cache: failing to read or write them never fails
 * a command, and `FETCH_CACHE_NO_ANSWERS=1` makes the launcher ignore them.
 */

import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export const ANSWERS_DIR = 'answers';
const EPOCH_FILE = 'epoch';
const USED_DIR = 'used';
const MAX_NAME_BYTES = 250;

/** The answer file name of a command line (see above), or undefined when it has none. */
export function answerName(argv: readonly string[]): string | undefined {
  let name = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root') {
      i++;
      continue;
    }
    if (a.startsWith('--root=')) continue;
    if (a === '--' || a.includes('\n')) return undefined;
    name += `%+${a.replaceAll('%', '%25').replaceAll('/', '%2F')}`;
  }
  name = name.slice(2);
  return Buffer.byteLength(name) > MAX_NAME_BYTES ? undefined : name;
}

/** The build id of the bundled CLI this module was bundled into, or undefined outside the bundle. */
function buildId(): string | undefined {
  try {
    const id = readFileSync(new URL('./build-id', import.meta.url), 'utf8').trim();
    return /^[0-9a-f]{8,64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function readEpoch(dir: string): string | undefined {
  try {
    const token = readFileSync(join(dir, EPOCH_FILE), 'utf8').trim();
    return /^[0-9a-f]{16}$/.test(token) ? token : undefined;
  } catch {
    return undefined;
  }
}

/** Write a fresh epoch token (atomically) and return it. */
function newEpoch(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const token = randomBytes(8).toString('hex');
  const tmp = join(dir, `.epoch-${process.pid}-${token}`);
  writeFileSync(tmp, `${token}\n`);
  renameSync(tmp, join(dir, EPOCH_FILE));
  return token;
}

/**
 * Retire every answer under `root`: from now on the launcher finds none of
 * them. Called after a path info was deleted or replaced. Best effort.
 */
export function retireAnswers(root: string): void {
  const dir = join(root, ANSWERS_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // no answers were ever written here
  }
  try {
    const epoch = newEpoch(dir);
    for (const n of names) {
      if (n === EPOCH_FILE || n === USED_DIR || n.startsWith(epoch)) continue;
      rmSync(join(dir, n), { recursive: true, force: true });
    }
  } catch {
    // an answers directory we cannot rotate cannot be written either (same permissions)
  }
}

/** When the launcher last answered for each path: hex store path digest → mtime (ms). */
export function readAnswerUses(root: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (root === undefined) return out;
  const dir = join(root, ANSWERS_DIR, USED_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^[0-9a-f]{40}$/.test(n)) continue;
    const st = statSync(join(dir, n), { throwIfNoEntry: false });
    if (st !== undefined) out.set(n, st.mtimeMs);
  }
  return out;
}

/** Remove the launcher's use stamps of paths for which `isLive(hex digest)` is false (gc). Best effort. */
export function forgetAnswerUses(root: string | undefined, isLive: (hex: string) => boolean): void {
  if (root === undefined) return;
  for (const [hex] of readAnswerUses(root)) {
    if (!isLive(hex)) rmSync(join(root, ANSWERS_DIR, USED_DIR, hex), { force: true });
  }
}

/**
 * One answer being made: `begin` before the fetch looks anything up (it takes
 * the epoch), `commit` with the exact stdout of a cache hit.
 */
export class AnswerWriter {
  private constructor(
    private readonly dir: string,
    private readonly name: string,
    private readonly build: string,
    private readonly epoch: string,
  ) {}

  /** A writer for `argv` on `root`, or undefined when this command line gets no answer. */
  static begin(root: string | undefined, argv: readonly string[]): AnswerWriter | undefined {
    if (root === undefined) return undefined;
    const name = answerName(argv);
    const build = buildId();
    if (name === undefined || build === undefined) return undefined;
    const dir = join(root, ANSWERS_DIR);
    try {
      let epoch = readEpoch(dir);
      if (epoch === undefined) {
        newEpoch(dir);
        epoch = readEpoch(dir); // another process's, should two have raced
      }
      return epoch === undefined ? undefined : new AnswerWriter(dir, name, build, epoch);
    } catch {
      return undefined;
    }
  }

  /** Keep `stdout` as the answer for the path with this store path digest. Best effort. */
  commit(storePathDigest: Uint8Array, stdout: string): void {
    const sub = join(this.dir, `${this.epoch}-${this.build}`);
    const file = join(sub, this.name);
    const text = `${Buffer.from(storePathDigest).toString('hex')}\n${stdout}`;
    try {
      if (readFileSync(file, 'utf8') === text) return;
    } catch {
      // not there yet
    }
    try {
      mkdirSync(sub, { recursive: true });
      mkdirSync(join(this.dir, USED_DIR), { recursive: true });
      const tmp = join(sub, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(tmp, text);
      renameSync(tmp, file);
      // Retired while this was being made: the answer may name a path that is gone.
      if (readEpoch(this.dir) !== this.epoch) unlinkSync(file);
    } catch {
      // best effort
    }
  }
}
