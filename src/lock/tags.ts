/**
 * Tag tracking: the newest tag of a ref listing whose version satisfies a
 * semver range (npins `GitRelease`, eka's semver tags). A tag counts when it
 * is `<prefix><version>` with a strict semver version (`1.2.3`,
 * `2.0.0-rc.1`) or a short one (`1.2`, `3`, read as `1.2.0`, `3.0.0`).
 * Prereleases are left out unless asked for. Ties (`v1.2` and `v1.2.0`) go
 * to the bytewise-smallest tag name, so the choice never depends on listing
 * order.
 */

import semver from 'semver';

export interface TagQuery {
  /** A semver range: `^1.2`, `~2.0`, `>=1 <3`, `*`. */
  readonly range: string;
  readonly prefix?: string | undefined;
  readonly prereleases?: boolean | undefined;
}

export interface ChosenTag {
  /** The tag name (without `refs/tags/`). */
  readonly tag: string;
  readonly version: string;
}

/** The version a tag name stands for under `prefix`, or undefined. */
export function tagVersion(tag: string, prefix = ''): string | undefined {
  if (!tag.startsWith(prefix)) return undefined;
  const rest = tag.slice(prefix.length);
  const strict = semver.valid(rest);
  if (strict !== null && strict === rest) return strict;
  const short = /^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$/.exec(rest);
  if (short) return `${short[1]}.${short[2] ?? '0'}.0`;
  return undefined;
}

/** The newest tag among `refs` (full ref names) matching `q`. */
export function newestTag(refs: Iterable<string>, q: TagQuery): ChosenTag | undefined {
  const includePrerelease = q.prereleases === true;
  let best: ChosenTag | undefined;
  for (const ref of refs) {
    if (!ref.startsWith('refs/tags/') || ref.endsWith('^{}')) continue;
    const tag = ref.slice('refs/tags/'.length);
    const version = tagVersion(tag, q.prefix);
    if (version === undefined) continue;
    if (!includePrerelease && semver.prerelease(version) !== null) continue;
    if (!semver.satisfies(version, q.range, { includePrerelease })) continue;
    if (best === undefined) {
      best = { tag, version };
      continue;
    }
    const c = semver.compare(version, best.version);
    if (c > 0 || (c === 0 && Buffer.compare(Buffer.from(tag), Buffer.from(best.tag)) < 0))
      best = { tag, version };
  }
  return best;
}
