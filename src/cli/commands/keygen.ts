/**
 * `keygen NAME --secret FILE --public FILE`: an Ed25519 key pair in Nix's
 * formats (`nix-store --generate-binary-cache-key`). The secret file is created
 * with mode 0600 and never overwritten.
 */

import { writeFile } from 'node:fs/promises';
import { FetchCacheError } from '../../errors.js';
import { type Command, expectArgs, stringOption, UsageError, writeLine } from '../command.js';

export const keygenCommand: Command = {
  words: ['keygen'],
  usage: 'keygen NAME --secret FILE --public FILE',
  summary: 'write a Nix-format ed25519 key pair; prints the public key',
  options: { secret: { type: 'string' }, public: { type: 'string' } },
  async run(ctx) {
    const [name] = expectArgs(ctx, 1, 'a key NAME');
    const secretFile = stringOption(ctx, 'secret');
    const publicFile = stringOption(ctx, 'public');
    if (secretFile === undefined || publicFile === undefined)
      throw new UsageError('--secret and --public are required');
    const { formatPublicKey, formatSecretKey, generateKeyPair } = await import('../../nix/signing.js');
    const pair = generateKeyPair(name!);
    // Nix writes both files without a trailing newline.
    await writeExclusive(secretFile, formatSecretKey(pair.secret), 0o600);
    await writeExclusive(publicFile, formatPublicKey(pair.public), 0o644);
    writeLine(ctx.stdout, formatPublicKey(pair.public));
  },
};

async function writeExclusive(path: string, text: string, mode: number): Promise<void> {
  try {
    await writeFile(path, text, { mode, flag: 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = code === 'EEXIST' ? 'already exists' : e instanceof Error ? e.message : String(e);
    throw new FetchCacheError('ERR_IO', `cannot write key file '${path}': ${msg}`, { path, cause: e });
  }
}
