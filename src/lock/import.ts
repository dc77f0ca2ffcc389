/**
 * Import and verify other tools' locks: a `flake.lock` (versions 5–7,
 * docs/formats.md §6) or an npins `sources.json` (docs/formats.md §6). Every input
 * of a type we fetch is prefetched into the cache and our NAR hash compared
 * with the recorded one; other types (indirect, path, gitlab, sourcehut,
 * mercurial, containers…) are reported as skipped.
 *
 * What the recorded hashes mean, and so how each input is fetched:
 * - flake `tarball` / `github`: NAR hash of the unpacked tree (github via
 *   `<base>/<owner>/<repo>/archive/<rev>.tar.gz`, base overridable);
 * - flake `file`: NAR hash of the single file;
 * - flake `git`: fetchTree semantics, so `exportIgnore` is off; one that
 *   differs gets a reason when its `.gitattributes` explain it (a lock
 *   written by Nix < 2.20 through `git archive`: git-archive.ts);
 * - npins forge pins (`Git`/`GitRelease` on GitHub/GitLab/Forgejo), `Channel`,
 *   `Tarball`: `nix-prefetch-url --unpack` of the recorded URL;
 * - npins plain `Git`: `nix-prefetch-git`, a checkout without `.git` (no
 *   export-ignore);
 * - npins `PyPi`: the flat hash of the file.
 */

import type { Cache } from '../cache.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import { Fetcher, type FetcherOptions } from '../fetchers/base.js';
import type { FetchSpec } from '../fetchers/types.js';
import { toSRI } from '../nix/hash.js';
import { parseUserHash } from './hashes.js';
import { DEFAULT_GITHUB_BASE } from './manifest.js';
import { DEFAULT_CONCURRENCY, mapLimited } from './pool.js';
import { githubArchiveUrl } from './resolve.js';

export type ImportStatus = 'ok' | 'differs' | 'skipped' | 'error';

/** One input of a flake.lock or sources.json, verified (and imported) by `importLock`. */
export interface ImportedInput {
  readonly name: string;
  readonly type: string;
  readonly status: ImportStatus;
  readonly url?: string | undefined;
  /** The recorded hash (SRI) and ours. */
  readonly expected?: string | undefined;
  readonly actual?: string | undefined;
  readonly storePath?: string | undefined;
  readonly reason?: string | undefined;
}

/** What `importLock` found in a flake.lock or npins sources.json: one entry per input. */
export interface ImportReport {
  readonly format: 'flake.lock' | 'npins';
  readonly version: number;
  readonly ok: boolean;
  readonly inputs: ImportedInput[];
}

export interface ImportOptions {
  readonly cache: Cache;
  readonly offline?: boolean | undefined;
  readonly concurrency?: number | undefined;
  /** Archive host for github inputs (default https://github.com); rewrites npins' github.com URLs too. */
  readonly githubBase?: string | undefined;
  readonly fetcher?: FetcherOptions | undefined;
  /** Names the file in errors. */
  readonly file?: string | undefined;
}

/**
 * How an input becomes a pin (`lock --import`, adopt.ts): the `pins.toml` fields that follow what the
 * lock's user asked for (the flake's `original`, npins' branch or release), and the commit the lock
 * holds, which the first lockfile entry must keep.
 */
export interface Adoption {
  readonly manifest: Readonly<Record<string, string | boolean>>;
  readonly rev?: string | undefined;
  readonly ref?: string | undefined;
}

/** One input to verify: a fetch and the hash to compare (`flat`: compare the flat hash, else the NAR hash). */
export interface Plan {
  readonly name: string;
  readonly type: string;
  readonly spec?: FetchSpec;
  readonly expected?: string;
  readonly flat?: boolean;
  readonly skip?: string;
  readonly adopt?: Adoption;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (o: Obj, k: string): string | undefined =>
  typeof o[k] === 'string' ? (o[k] as string) : undefined;

function bad(file: string | undefined, message: string): FetchCacheError {
  return new FetchCacheError(
    'ERR_BAD_LOCKFILE',
    `${file ?? 'lock'}: ${message}`,
    file === undefined ? {} : { path: file },
  );
}

function sriOf(
  file: string | undefined,
  where: string,
  text: string | undefined,
  sha256Only: boolean,
): string {
  if (text === undefined) throw bad(file, `${where}: missing hash`);
  try {
    return toSRI(parseUserHash(text, sha256Only));
  } catch (e) {
    throw bad(file, `${where}: bad hash: ${(e as Error).message}`);
  }
}

function githubUrl(base: string | undefined, o: Obj, rev: string): string {
  const host = str(o, 'host');
  const b = base ?? (host !== undefined ? `https://${host}` : DEFAULT_GITHUB_BASE);
  return githubArchiveUrl(b, str(o, 'owner') ?? '', str(o, 'repo') ?? '', rev);
}

function flakePlans(doc: Obj, opts: Pick<ImportOptions, 'file' | 'githubBase'>): Plan[] {
  const file = opts.file;
  if (!isObj(doc.nodes)) throw bad(file, "'nodes' must be an object");
  const plans: Plan[] = [];
  for (const [name, node] of Object.entries(doc.nodes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (name === doc.root || !isObj(node) || node.locked === undefined) continue;
    if (!isObj(node.locked)) throw bad(file, `nodes.${name}.locked must be an object`);
    const l = node.locked;
    const type = str(l, 'type') ?? '?';
    const where = `nodes.${name}.locked`;
    const url = str(l, 'url')?.replace(/^(git|tarball|file)\+/, '');
    const rev = str(l, 'rev');
    const original = isObj(node.original) ? node.original : {};
    // What the flake asked for: a ref (branch or tag) is followed by `update`, a rev stays.
    const follow = (): Record<string, string> => {
      const ref = str(original, 'ref');
      const orev = str(original, 'rev');
      return ref !== undefined ? { ref } : orev !== undefined ? { rev: orev } : {};
    };
    const expected = () => sriOf(file, where, str(l, 'narHash'), true);
    switch (type) {
      case 'tarball':
        if (url === undefined) throw bad(file, `${where}: missing url`);
        plans.push({
          name,
          type,
          spec: { type: 'tarball', url },
          expected: expected(),
          adopt: { manifest: { type: 'tarball', url } },
        });
        break;
      case 'file':
        if (url === undefined) throw bad(file, `${where}: missing url`);
        plans.push({
          name,
          type,
          spec: { type: 'url', url, name: 'source' },
          expected: expected(),
          adopt: { manifest: { type: 'url', url } },
        });
        break;
      case 'git':
        if (url === undefined || rev === undefined)
          throw bad(file, `${where}: a git input needs url and rev`);
        plans.push({
          name,
          type,
          spec: {
            type: 'git',
            url,
            rev,
            ...(str(l, 'ref') === undefined ? {} : { ref: str(l, 'ref') }),
            submodules: l.submodules === true,
            shallow: l.shallow === true,
            exportIgnore: l.exportIgnore === true,
          },
          expected: expected(),
          adopt: {
            manifest: {
              type: 'git',
              url,
              ...follow(),
              ...(l.submodules === true ? { submodules: true } : {}),
              ...(l.shallow === true ? { shallow: true } : {}),
              exportIgnore: l.exportIgnore === true,
            },
            rev,
            ref: str(l, 'ref'),
          },
        });
        break;
      case 'github': {
        if (rev === undefined) throw bad(file, `${where}: a github input needs rev`);
        const archive = githubUrl(opts.githubBase, l, rev);
        // Another host than the manifest's [github] base cannot be a github pin: its archive is a tarball.
        const host = str(l, 'host');
        const sameHost = host === undefined || host === 'github.com' || opts.githubBase !== undefined;
        plans.push({
          name,
          type,
          spec: { type: 'tarball', url: archive },
          expected: expected(),
          adopt: sameHost
            ? {
                manifest: {
                  type: 'github',
                  owner: str(l, 'owner') ?? '',
                  repo: str(l, 'repo') ?? '',
                  ...follow(),
                },
                rev,
              }
            : { manifest: { type: 'tarball', url: archive } },
        });
        break;
      }
      default:
        plans.push({ name, type, skip: `input type '${type}' is not fetched by fetch-cache` });
    }
  }
  return plans;
}

function rebase(url: string, base: string | undefined): string {
  return base !== undefined && url.startsWith(`${DEFAULT_GITHUB_BASE}/`)
    ? `${base.replace(/\/+$/, '')}${url.slice(DEFAULT_GITHUB_BASE.length)}`
    : url;
}

/** What an npins Git pin follows: its branch; a GitRelease, the newest release tag (below its bound). */
function npinsFollow(pin: Obj): Record<string, string | boolean> {
  if (str(pin, 'type') === 'Git') {
    const branch = str(pin, 'branch');
    return branch === undefined ? {} : { ref: branch };
  }
  const version = str(pin, 'version') ?? '';
  const prefix = /^[^0-9]*/.exec(version)?.[0] ?? '';
  const bound = str(pin, 'version_upper_bound');
  return {
    tag: bound === undefined ? '*' : `<${bound}`,
    ...(prefix === '' ? {} : { prefix }),
    ...(pin.pre_releases === true ? { prereleases: true } : {}),
  };
}

/** The full ref an npins pin was locked from. */
function npinsRef(pin: Obj): string | undefined {
  const branch = str(pin, 'branch');
  if (str(pin, 'type') === 'Git') return branch === undefined ? undefined : `refs/heads/${branch}`;
  const version = str(pin, 'version');
  return version === undefined ? undefined : `refs/tags/${version}`;
}

function npinsPlans(doc: Obj, opts: Pick<ImportOptions, 'file' | 'githubBase'>): Plan[] {
  const file = opts.file;
  if (!isObj(doc.pins)) throw bad(file, "'pins' must be an object");
  const plans: Plan[] = [];
  for (const [name, pin] of Object.entries(doc.pins).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!isObj(pin)) throw bad(file, `pins.${name} must be an object`);
    const type = str(pin, 'type') ?? '?';
    const where = `pins.${name}`;
    const repo = isObj(pin.repository) ? pin.repository : undefined;
    const rev = str(pin, 'revision');
    const url = str(pin, 'locked_url') ?? str(pin, 'url');
    if ((type === 'Git' || type === 'GitRelease') && repo !== undefined) {
      const hash = sriOf(file, where, str(pin, 'hash'), true);
      if (str(repo, 'type') === 'Git') {
        const gitUrl = str(repo, 'url');
        if (gitUrl === undefined || rev === undefined)
          throw bad(file, `${where}: a Git pin needs repository.url and revision`);
        const submodules = pin.submodules === true;
        plans.push({
          name,
          type,
          spec: { type: 'git', url: gitUrl, rev, submodules, exportIgnore: false },
          expected: hash,
          adopt: {
            manifest: {
              type: 'git',
              url: gitUrl,
              ...npinsFollow(pin),
              ...(submodules ? { submodules } : {}),
              exportIgnore: false,
            },
            rev,
            ref: npinsRef(pin),
          },
        });
      } else {
        let archive = url;
        const github = str(repo, 'type') === 'GitHub';
        if (archive === undefined && github && rev !== undefined) archive = githubUrl(undefined, repo, rev);
        if (archive === undefined) throw bad(file, `${where}: missing url`);
        archive = rebase(archive, opts.githubBase);
        plans.push({
          name,
          type,
          spec: { type: 'tarball', url: archive },
          expected: hash,
          adopt:
            github && rev !== undefined
              ? {
                  manifest: {
                    type: 'github',
                    owner: str(repo, 'owner') ?? '',
                    repo: str(repo, 'repo') ?? '',
                    ...npinsFollow(pin),
                  },
                  rev,
                  ref: npinsRef(pin),
                }
              : { manifest: { type: 'tarball', url: archive } },
        });
      }
    } else if (type === 'Channel' || type === 'Tarball') {
      if (url === undefined) throw bad(file, `${where}: missing url`);
      const tarball = rebase(url, opts.githubBase);
      plans.push({
        name,
        type,
        spec: { type: 'tarball', url: tarball },
        expected: sriOf(file, where, str(pin, 'hash'), true),
        adopt: { manifest: { type: 'tarball', url: tarball } },
      });
    } else if (type === 'PyPi') {
      if (url === undefined) throw bad(file, `${where}: missing url`);
      plans.push({
        name,
        type,
        spec: { type: 'url', url },
        expected: sriOf(file, where, str(pin, 'hash'), false),
        flat: true,
        adopt: { manifest: { type: 'url', url } },
      });
    } else plans.push({ name, type, skip: `pin type '${type}' is not fetched by fetch-cache` });
  }
  return plans;
}

async function verify(plan: Plan, fetcher: Fetcher): Promise<ImportedInput> {
  const base = { name: plan.name, type: plan.type };
  if (plan.skip !== undefined || plan.spec === undefined)
    return { ...base, status: 'skipped', reason: plan.skip };
  const spec = plan.spec;
  const url = spec.type === 'path' ? spec.path : spec.url;
  // Never the recorded hash as the expected one: the cache is content-addressed, so a wrong hash naming
  // other cached content would "verify". Fetched by URL / rev, then compared.
  const sha256 = plan.expected?.startsWith('sha256-') === true;
  try {
    const r = await fetcher.fetch(plan.flat && !sha256 ? { ...spec, hash: plan.expected } : spec);
    const actual = toSRI(plan.flat ? r.hash! : r.narHash);
    const reason =
      actual !== plan.expected && plan.type === 'git' && spec.type === 'git' && plan.expected !== undefined
        ? await (await import('./git-archive.js')).explainGitMismatch(spec, r.node, plan.expected, fetcher)
        : undefined;
    return {
      ...base,
      status: actual === plan.expected ? 'ok' : 'differs',
      url,
      expected: plan.expected,
      actual,
      storePath: r.path,
      ...(reason === undefined ? {} : { reason }),
    };
  } catch (e) {
    if (isFetchCacheError(e, 'ERR_HASH_MISMATCH'))
      return { ...base, status: 'differs', url, expected: plan.expected, actual: e.actual };
    if (isFetchCacheError(e))
      return { ...base, status: 'error', url, expected: plan.expected, reason: e.toLine() };
    throw e;
  }
}

/** A flake.lock or npins sources.json, parsed: what each input is and how to fetch and adopt it. */
export interface ForeignLock {
  readonly format: ImportReport['format'];
  readonly version: number;
  readonly plans: readonly Plan[];
}

/** Parse a flake.lock or npins sources.json text (ERR_BAD_LOCKFILE when it is neither). */
export function parseForeignLock(
  text: string,
  opts: Pick<ImportOptions, 'file' | 'githubBase'>,
): ForeignLock {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(opts.file, `invalid JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw bad(opts.file, 'must be a JSON object');
  const version = doc.version;
  let format: ImportReport['format'];
  let plans: Plan[];
  if (doc.nodes !== undefined) {
    format = 'flake.lock';
    if (version !== 5 && version !== 6 && version !== 7)
      throw bad(
        opts.file,
        `unsupported flake.lock version ${JSON.stringify(version ?? null)} (5 to 7 are read)`,
      );
    plans = flakePlans(doc, opts);
  } else if (doc.pins !== undefined) {
    format = 'npins';
    if (typeof version !== 'number' || version < 3 || version > 8)
      throw bad(
        opts.file,
        `unsupported npins sources.json version ${JSON.stringify(version ?? null)} (3 to 8 are read)`,
      );
    plans = npinsPlans(doc, opts);
  } else throw bad(opts.file, "neither a flake.lock ('nodes') nor an npins sources.json ('pins')");
  return { format, version: version as number, plans };
}

/** Fetch every fetchable input of a parsed lock (through `fetcher`) and compare its hash with the recorded one. */
export async function verifyForeignLock(
  lock: ForeignLock,
  fetcher: Fetcher,
  concurrency: number | undefined,
): Promise<ImportReport> {
  const inputs = await mapLimited(lock.plans, concurrency ?? DEFAULT_CONCURRENCY, (p) => verify(p, fetcher));
  const ok = inputs.every((i) => i.status === 'ok' || i.status === 'skipped');
  return { format: lock.format, version: lock.version, ok, inputs };
}

/** Parse a flake.lock or npins sources.json text and verify every fetchable input. */
export async function importLock(text: string, opts: ImportOptions): Promise<ImportReport> {
  const lock = parseForeignLock(text, opts);
  const fetcher = new Fetcher(opts.cache, { ...opts.fetcher, offline: opts.offline === true });
  return verifyForeignLock(lock, fetcher, opts.concurrency);
}
