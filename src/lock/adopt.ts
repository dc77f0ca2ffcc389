/**
 * `lock --import FILE`: move from flake inputs or npins to fetch-cache in one
 * command. Each input of a `flake.lock` or npins `sources.json` that we fetch
 * (flake tarball, file, git and github inputs; npins Git, GitRelease,
 * Tarball, Channel and PyPi pins) is first verified as `lock --from` does
 * (import.ts: fetched, our hash equal to the recorded one), then becomes a
 * `pins.toml` entry and a `pins.lock` entry:
 *
 * - the manifest entry follows what the lock's user asked for: the flake's
 *   `original` ref (or rev), npins' branch or release range, so `update`
 *   moves it as `nix flake update` / `npins update` would;
 * - the lockfile entry holds exactly the locked content: resolved at the
 *   locked rev (github and git), from the locked URL (tarball, file), with the
 *   manifest entry's digest, so `lock` keeps it and `lock --check` passes.
 *
 * Flake and npins git inputs get `exportIgnore = false` (the tree as they
 * fetch it); a flake `file` input becomes a `url` pin: the same bytes, under
 * the flat store path `builtins.fetchurl` gives (a url pin's own path), not
 * the flake's NAR-hashed `source` path. Anything else is skipped and said so.
 * When any input does not verify, nothing is adopted (the caller writes
 * nothing); a name the manifest already has is ERR_BAD_MANIFEST.
 */

import type { Cache } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import { Fetcher, type FetcherOptions } from '../fetchers/base.js';
import { type ImportReport, type Plan, parseForeignLock, verifyForeignLock } from './import.js';
import { LOCKFILE_VERSION, type LockedPin, type Lockfile } from './lockfile.js';
import { effectivePin, type GithubHosts, type Pin, parseManifest, pinDigest } from './manifest.js';
import { DEFAULT_CONCURRENCY, mapLimited } from './pool.js';
import { resolvePin } from './resolve.js';

export interface AdoptOptions {
  readonly cache: Cache;
  readonly offline?: boolean | undefined;
  readonly concurrency?: number | undefined;
  /** Where github pins come from; written to the manifest's `[github]` table when it has none. */
  readonly github?: GithubHosts | undefined;
  readonly fetcher?: FetcherOptions | undefined;
  /** Names the imported file in errors and in the comment above the new entries. */
  readonly file?: string | undefined;
  /** Names the manifest in errors. */
  readonly manifestFile?: string | undefined;
  /** The lockfile the entries are for (an absolute path), recorded with each pin (resolve.ts). */
  readonly lockfile?: string | undefined;
}

export interface AdoptResult {
  /** The verification of every input (as `lock --from`); `ok` false means nothing was adopted. */
  readonly report: ImportReport;
  /** Pins added, by name. */
  readonly imported: string[];
  /** The manifest text with the new entries appended (unchanged when nothing was adopted). */
  readonly manifestText: string;
  /** The lockfile with the new entries. */
  readonly lock: Lockfile;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

function tomlValue(v: string | boolean): string {
  return typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

function tomlTable(header: string, fields: Readonly<Record<string, string | boolean>>): string {
  const lines = Object.entries(fields).map(([k, v]) => `${k} = ${tomlValue(v)}`);
  return `[${header}]\n${lines.join('\n')}\n`;
}

function pinHeader(name: string): string {
  return `pins.${BARE_KEY.test(name) ? name : JSON.stringify(name)}`;
}

/** The pin resolved at the locked commit: the manifest entry's selector replaced by the lock's rev. */
function lockingPin(pin: Pin, plan: Plan): Pin {
  const rev = plan.adopt?.rev;
  if (rev === undefined || (pin.type !== 'git' && pin.type !== 'github')) return pin;
  const ref = pin.type === 'git' ? (plan.adopt?.ref ?? pin.ref) : undefined;
  return { ...pin, rev, ref, tag: undefined, prefix: undefined, prereleases: undefined };
}

export async function adoptLock(
  text: string,
  manifestText: string | undefined,
  lock: Lockfile | undefined,
  opts: AdoptOptions,
): Promise<AdoptResult> {
  const base = manifestText ?? '';
  const existing = parseManifest(base, opts.manifestFile);
  const foreign = parseForeignLock(text, { file: opts.file, githubBase: opts.github?.base });
  for (const plan of foreign.plans) {
    if (plan.adopt !== undefined && existing.pins.has(plan.name)) {
      throw new FetchCacheError(
        'ERR_BAD_MANIFEST',
        `${opts.manifestFile ?? 'manifest'} already has a pin named '${plan.name}' (an input of ${opts.file ?? 'the imported lock'})`,
        { path: plan.name },
      );
    }
  }
  const fetcher = new Fetcher(opts.cache, { ...opts.fetcher, offline: opts.offline === true });
  const report = await verifyForeignLock(foreign, fetcher, opts.concurrency);
  const unchanged = {
    report,
    imported: [],
    manifestText: base,
    lock: lock ?? { version: LOCKFILE_VERSION, pins: {} },
  };
  if (!report.ok) return unchanged;
  const ok = new Set(report.inputs.filter((i) => i.status === 'ok').map((i) => i.name));
  const adopted = foreign.plans.filter((p) => p.adopt !== undefined && ok.has(p.name));
  if (adopted.length === 0) return unchanged;

  let added = `\n# imported from ${opts.file ?? 'a lock file'} by \`fetch-cache lock --import\`\n`;
  const hosts = opts.github ?? {};
  const needsHosts = adopted.some((p) => p.adopt?.manifest.type === 'github');
  if (needsHosts && !/^\s*\[github\]\s*$/m.test(base) && (hosts.base ?? hosts.gitBase) !== undefined) {
    added += `\n${tomlTable('github', {
      ...(hosts.base === undefined ? {} : { base: hosts.base }),
      ...(hosts.gitBase === undefined ? {} : { 'git-base': hosts.gitBase }),
    })}`;
  }
  for (const plan of adopted) added += `\n${tomlTable(pinHeader(plan.name), plan.adopt!.manifest)}`;
  const next = `${base}${base === '' || base.endsWith('\n') ? '' : '\n'}${added}`;
  const manifest = parseManifest(next, opts.manifestFile);

  const entries = await mapLimited(adopted, opts.concurrency ?? DEFAULT_CONCURRENCY, async (plan) => {
    const pin = manifest.pins.get(plan.name)!;
    const entry = await resolvePin(lockingPin(pin, plan), {
      cache: opts.cache,
      offline: opts.offline,
      fetcher,
      github: opts.github,
      lockfile: opts.lockfile,
    });
    const ref = plan.adopt?.ref;
    const out: LockedPin = {
      ...entry,
      ...(entry.ref === undefined && ref?.startsWith('refs/') && pin.type === 'github' ? { ref } : {}),
      manifestDigest: pinDigest(effectivePin(pin, opts.github)),
    };
    if (
      !plan.flat &&
      out.narHash !== undefined &&
      plan.expected !== undefined &&
      out.narHash !== plan.expected
    ) {
      throw new FetchCacheError(
        'ERR_HASH_MISMATCH',
        `${plan.name}: locked at its rev it has narHash ${out.narHash}, the lock records ${plan.expected}`,
        { path: plan.name, expected: plan.expected, actual: out.narHash },
      );
    }
    return [plan.name, out] as const;
  });
  return {
    report,
    imported: adopted.map((p) => p.name),
    manifestText: next,
    lock: { version: LOCKFILE_VERSION, pins: { ...lock?.pins, ...Object.fromEntries(entries) } },
  };
}
