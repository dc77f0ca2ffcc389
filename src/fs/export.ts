/**
 * Materialise a castore node as a new directory tree (`fetch-cache export`).
 * The target must not exist; everything is created below it with exclusive
 * flags, and names come from validated castore directories (no `/`, `.`,
 * `..`), so nothing can be written outside the target — not even through a
 * symlink in the tree, since symlinks are created, never followed. Files get
 * 0644 or 0755 (executable), like a NAR restore under umask 022.
 */

import { mkdir, open, symlink } from 'node:fs/promises';
import type { Node } from '../castore/nodes.js';
import { FetchCacheError } from '../errors.js';
import type { RenderServices } from '../nar-render/render.js';
import { ioError } from './dump.js';

const SLASH = Buffer.from('/');

/** Writes the tree of a node at `target` (which must not exist), files with mode 0644 or 0755. */
export async function exportNode(node: Node, target: string, services: RenderServices): Promise<void> {
  await write(node, Buffer.from(target), services);
}

async function write(node: Node, path: Buffer, services: RenderServices): Promise<void> {
  try {
    switch (node.type) {
      case 'symlink':
        await symlink(Buffer.from(node.target), path);
        return;
      case 'file': {
        const handle = await open(path, 'wx', node.executable ? 0o755 : 0o644);
        try {
          const chunks = await services.blobs.read(node.digest);
          if (chunks === undefined) throw missing('blob', path);
          for await (const chunk of chunks) await handle.write(chunk);
        } finally {
          await handle.close();
        }
        return;
      }
      case 'directory': {
        const dir = await services.directories.get(node.digest);
        if (dir === undefined) throw missing('directory', path);
        await mkdir(path, { mode: 0o755 });
        for (const e of dir) await write(e.node, Buffer.concat([path, SLASH, e.name]), services);
      }
    }
  } catch (e) {
    if (e instanceof FetchCacheError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new FetchCacheError('ERR_IO', `export target '${path.toString()}' already exists`, {
        path: path.toString(),
      });
    }
    throw ioError(e, path);
  }
}

function missing(kind: string, path: Buffer): FetchCacheError {
  return new FetchCacheError(
    'ERR_INTEGRITY',
    `the ${kind} for '${path.toString()}' is missing from the store`,
    {
      path: path.toString(),
    },
  );
}
