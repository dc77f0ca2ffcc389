/**
 * Extra trusted CA certificates, loaded when the first TLS connection is made.
 *
 * Node reads and parses every certificate named by `NODE_EXTRA_CA_CERTS` when it starts, before any of
 * our code runs: ~80 ms for Debian's 220 KB bundle, on every command, though most commands (`hash`,
 * `add`, `nar`, `path-info`, a fetch answered from the cache) never open a TLS connection. The
 * `fetch-cache` launcher (`bin/fetch-cache`) therefore moves the variable to
 * `FETCH_CACHE_EXTRA_CA_CERTS` before starting Node; `main` puts it back for child processes, and the
 * HTTP clients call {@link extraCaContext} on each TLS connection, which reads the file once and trusts
 * Node's bundled roots plus those certificates, as Node itself would have.
 *
 * When the file cannot be read, the connection goes on with the bundled roots and a warning is
 * printed, as Node does ("Ignoring extra certs from …").
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { SecureContext } from 'node:tls';

import { DEFERRED_CA_VAR } from './tls-env.js';

let loaded: { file: string; context: SecureContext | undefined } | undefined;

/**
 * The secure context to connect with when extra CA certificates were deferred by the launcher, else
 * `undefined` (Node's defaults, which already include `NODE_EXTRA_CA_CERTS` when Node loaded it).
 */
export function extraCaContext(
  env: NodeJS.ProcessEnv = process.env,
  warn: (line: string) => void = (l) => process.emitWarning(l),
): SecureContext | undefined {
  const file = env[DEFERRED_CA_VAR];
  if (!file) return undefined;
  if (loaded?.file === file) return loaded.context;
  let context: SecureContext | undefined;
  try {
    const pem = readFileSync(file, 'latin1');
    // node:tls is loaded here, on the first TLS connection, not when the CLI starts.
    const tls = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
    context = tls.createSecureContext({ ca: [...tls.rootCertificates, pem] });
  } catch (e) {
    warn(`Ignoring extra certs from \`${file}\`, load failed: ${(e as Error).message}`);
  }
  loaded = { file, context };
  return context;
}
