/** The environment side of deferred extra CA certificates (see ./tls.ts); loads nothing. */

/** The variable the launcher (`bin/fetch-cache`) moves `NODE_EXTRA_CA_CERTS` to. */
export const DEFERRED_CA_VAR = 'FETCH_CACHE_EXTRA_CA_CERTS';

/**
 * Hands a deferred `FETCH_CACHE_EXTRA_CA_CERTS` back as `NODE_EXTRA_CA_CERTS` in `env`, so that child
 * processes (git, nix, a hook) see what the user set; this process has already started without it.
 */
export function restoreExtraCaVar(env: NodeJS.ProcessEnv = process.env): void {
  const file = env[DEFERRED_CA_VAR];
  if (file && env.NODE_EXTRA_CA_CERTS === undefined) env.NODE_EXTRA_CA_CERTS = file;
}
