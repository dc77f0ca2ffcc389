/**
 * Tar members → the archive tree. The (already decompressed) bytes are read
 * member by member by tar-reader.ts (ustar, GNU long names and links, pax);
 * regular file contents go straight into blob writers, one member at a time,
 * never to disk and never whole in memory, and on to the one-pass NAR hash
 * (tree-nar.ts).
 *
 * Member types, as modern Nix's `unpackTarfileToSink` treats them: regular
 * (and contiguous) files are executable iff the owner-x bit is set; symlinks
 * are kept with their target bytes; hard links become regular files with
 * their target's content and mode; directories are recorded (and merged);
 * character and block devices, FIFOs and any other type are ERR_BAD_ARCHIVE
 * (Nix: "file '…' in tarball has unsupported file type"). GNU sparse members
 * are refused too: their data is not the file's content.
 *
 * Names: ustar/GNU header names are taken as raw bytes; pax `path`/`linkpath`
 * are UTF-8 by definition.
 *
 * The archive ends at its first all-zero header block, as libarchive reads it
 * (tar-reader.ts): members and junk after it are never read.
 */

import type { BlobService } from '../../blob/service.js';
import type { NarSum } from '../../nar-render/nar-calc.js';
import type { ByteBudget } from './budget.js';
import { badArchive, memberComponents } from './path.js';
import {
  type TarHeader,
  type TarMember,
  TarReader,
  TYPE_CONTIGUOUS,
  TYPE_DIRECTORY,
  TYPE_FILE,
  TYPE_HARD_LINK,
  TYPE_SYMLINK,
} from './tar-reader.js';
import type { ArchiveTree, BlobRef } from './tree.js';
import { TreeNar, type TreeNarOptions } from './tree-nar.js';
import { BlobUploads } from './uploads.js';

/**
 * Read a whole tar stream into `tree`; `budget` counts the decompressed bytes. Returns the tree's NAR
 * sum, computed on the way (tree-nar.ts, with `nar`'s window and spool root), or `undefined` when it
 * must be rendered from the store. The input is read up to the archive's end (tar-reader.ts) and
 * left open there.
 */
export async function readTar(
  chunks: AsyncIterable<Uint8Array>,
  tree: ArchiveTree,
  blobs: BlobService,
  budget: ByteBudget,
  nar: TreeNarOptions = {},
): Promise<NarSum | undefined> {
  const reader = new TarReader(chunks[Symbol.asyncIterator](), budget);
  const uploads = new BlobUploads(blobs);
  const hash = new TreeNar(tree, blobs, () => uploads.settle(), nar);
  try {
    for (let member = await reader.next(); member !== undefined; member = await reader.next()) {
      await readMember(member, tree, uploads, budget, hash);
    }
    await uploads.settle();
    return await hash.finish();
  } finally {
    await uploads.settle().catch(() => {});
    hash.close();
  }
}

async function readMember(
  { header, data }: TarMember, // data not read here is skipped by the reader
  tree: ArchiveTree,
  uploads: BlobUploads,
  budget: ByteBudget,
  nar: TreeNar,
): Promise<void> {
  const path = memberComponents(header.name);
  tree.touch(header.mtime);
  switch (header.type) {
    case TYPE_FILE:
    case TYPE_CONTIGUOUS:
      budget.check(header.size);
      await readFile(data, header.size, path, (header.mode & 0o100) !== 0, tree, uploads, nar);
      return;
    case TYPE_DIRECTORY:
      tree.addDirectory(path);
      return;
    case TYPE_SYMLINK:
      tree.addSymlink(path, header.linkname ?? new Uint8Array());
      return;
    case TYPE_HARD_LINK:
      tree.addHardLink(path, memberComponents(header.linkname ?? new Uint8Array()));
      return;
    default:
      throw badArchive(`archive member has unsupported type ${describeType(header)}`, header.name);
  }
}

/**
 * A regular member's bytes into a blob and into the NAR hash's spool (tree-nar.ts), and hashed as they
 * pass when the hash writes ahead up to a file too large for its window.
 */
async function readFile(
  data: AsyncIterable<Uint8Array>,
  size: number,
  path: Uint8Array[],
  executable: boolean,
  tree: ArchiveTree,
  uploads: BlobUploads,
  nar: TreeNar,
): Promise<void> {
  const plan = nar.plan(size);
  if (plan === 'none') {
    tree.addFile(path, await uploads.upload(data), executable);
    return;
  }
  const ref: BlobRef = { value: undefined };
  const leaf = tree.addFile(path, ref, executable);
  const streaming = plan === 'stream' && (await nar.stream(leaf, size));
  const mark = nar.spoolStart();
  await uploads.upload(
    passing(data, (chunk) => {
      if (streaming) nar.contents(chunk);
      nar.spoolContents(chunk);
    }),
    ref,
  );
  await nar.spooled(leaf, mark, size, plan === 'hold');
}

/** `chunks`, each shown to `see` on its way. */
async function* passing(
  chunks: AsyncIterable<Uint8Array>,
  see: (chunk: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    see(chunk);
    yield chunk;
  }
}

/** The names tar-stream gave the types refused here, for the message (the flag itself otherwise). */
function describeType(header: TarHeader): string {
  switch (header.type) {
    case 3:
      return 'character-device';
    case 4:
      return 'block-device';
    case 6:
      return 'fifo';
    default:
      return 'unknown';
  }
}
