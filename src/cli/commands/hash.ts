/**
 * `hash path` and `hash file`: the NAR hash of a local path (`nix hash path`)
 * and the flat hash of a file (`nix hash file`), printed in any of Nix's formats.
 */

import { formatHash, type HashFormat, parseHashAlgo } from '../../nix/hash.js';
import {
  type Command,
  type CommandContext,
  expectArgs,
  stringOption,
  UsageError,
  writeJson,
  writeLine,
} from '../command.js';

const FORMAT_OPTIONS = {
  type: { type: 'string' },
  base16: { type: 'boolean' },
  base32: { type: 'boolean' },
  nix32: { type: 'boolean' },
  base64: { type: 'boolean' },
  sri: { type: 'boolean' },
} as const;

/** The output format from the mutually exclusive format flags; SRI by default, as `nix hash`. */
function formatOf(ctx: CommandContext): HashFormat {
  const chosen: HashFormat[] = [];
  if (ctx.values.base16) chosen.push('base16');
  if (ctx.values.base32 || ctx.values.nix32) chosen.push('nix32');
  if (ctx.values.base64) chosen.push('base64');
  if (ctx.values.sri) chosen.push('sri');
  if (chosen.length > 1) throw new UsageError('choose at most one of --base16, --base32, --base64, --sri');
  return chosen[0] ?? 'sri';
}

function algoOf(ctx: CommandContext) {
  const t = stringOption(ctx, 'type') ?? 'sha256';
  try {
    return parseHashAlgo(t);
  } catch {
    throw new UsageError(`unknown hash type '${t}' (use sha256, sha512, sha1 or md5)`);
  }
}

function makeHashCommand(word: 'path' | 'file'): Command {
  return {
    words: ['hash', word],
    usage: `hash ${word} PATH [--type sha256|sha512|sha1|md5] [--base16|--base32|--base64|--sri] [--json]`,
    summary:
      word === 'path'
        ? 'NAR hash of a local path, like `nix hash path` (default SRI)'
        : 'flat hash of a file, like `nix hash file` (default SRI)',
    options: FORMAT_OPTIONS,
    async run(ctx) {
      const [path] = expectArgs(ctx, 1, 'one PATH');
      const algo = algoOf(ctx);
      const format = formatOf(ctx);
      const { hashFile, hashPath } = await import('../../fs/hash.js');
      const hash = word === 'path' ? (await hashPath(path!, algo)).hash : await hashFile(path!, algo);
      const text = formatHash(hash, format);
      if (ctx.globals.json) writeJson(ctx.stdout, { hash: text });
      else writeLine(ctx.stdout, text);
    },
  };
}

export const hashPathCommand = makeHashCommand('path');
export const hashFileCommand = makeHashCommand('file');
