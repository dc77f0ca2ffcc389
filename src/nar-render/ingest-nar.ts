/**
 * NAR bytes → castore (the reverse of rendering). The stream goes through the
 * strict NAR parser; file contents stream straight into blob writers, and the
 * nodes become an entry stream for `ingestEntries()` (children before
 * parents, as the NAR closes them). SHA-256 and size of the NAR are computed
 * on the way, so the caller can check them against an expected NarHash
 * without a second pass. A bad NAR is ERR_BAD_NAR; nothing becomes visible
 * as a path (blobs and directories already written are unreferenced until gc).
 */

import type { BlobWriter } from '../blob/service.js';
import { type IngestEntry, type IngestServices, ingestEntries } from '../castore/ingest.js';
import type { Node } from '../castore/nodes.js';
import { createHasher } from '../nix/hashing.js';
import { NarParser, type NarPath } from '../nix/nar/parser.js';
import type { NarSum } from './nar-calc.js';

export interface IngestedNar extends NarSum {
  readonly node: Node;
}

/** Path components joined with `/`, the entry path form of `ingestEntries`. */
function joinPath(path: NarPath): Uint8Array {
  if (path.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(path.reduce((n, c) => n + c.length, path.length - 1));
  let at = 0;
  for (const [i, c] of path.entries()) {
    if (i > 0) out[at++] = 0x2f;
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Parse and ingest a NAR stream. */
export async function ingestNar(
  source: AsyncIterable<Uint8Array>,
  services: IngestServices,
): Promise<IngestedNar> {
  const hasher = createHasher('sha256');
  const parser = new NarParser();
  let narSize = 0;

  async function* entries(): AsyncGenerator<IngestEntry> {
    let writer: BlobWriter | undefined;
    let executable = false;
    try {
      const handle = async function* (events: ReturnType<NarParser['push']>): AsyncGenerator<IngestEntry> {
        for (const ev of events) {
          switch (ev.type) {
            case 'regular':
              writer = services.blobs.writer();
              executable = ev.executable;
              break;
            case 'contents':
              await writer!.write(ev.data);
              break;
            case 'regularEnd': {
              const blob = await writer!.close();
              writer = undefined;
              yield { type: 'file', path: joinPath(ev.path), executable, blob };
              break;
            }
            case 'symlink':
              yield { type: 'symlink', path: joinPath(ev.path), target: ev.target.slice() };
              break;
            case 'directoryEnd':
              yield { type: 'directory', path: joinPath(ev.path) };
              break;
            case 'directory':
              break;
          }
        }
      };
      for await (const chunk of source) {
        hasher.update(chunk);
        narSize += chunk.length;
        yield* handle(parser.push(chunk));
      }
      yield* handle(parser.end());
    } finally {
      if (writer) await writer.abort();
    }
  }

  const node = await ingestEntries(entries(), services);
  return { node, narSha256: hasher.digest(), narSize };
}
