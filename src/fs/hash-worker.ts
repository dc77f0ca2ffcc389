/**
 * The thread that worker-hasher.ts starts: it feeds the bytes it is sent, in message order, to the
 * hashers named in its `workerData`, hands lent buffers back once hashed, and answers `end` with the
 * digests. A module of its own (typed and linted with the rest), started by its URL next to
 * worker-hasher's own file.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { createBlake3Hasher, createHasher } from '../nix/hashing.js';
import type { HashReply, HashRequest, HashWorkerData } from './worker-hasher.js';

const { algos } = workerData as HashWorkerData;
const hashers = algos.map((a) => (a === 'blake3' ? createBlake3Hasher() : createHasher(a)));
const port = parentPort!;

port.on('message', (m: HashRequest) => {
  const reply = (r: HashReply, transfer: ArrayBuffer[] = []) => port.postMessage(r, transfer);
  try {
    if (m.kind === 'end') {
      reply({ id: m.id, digests: hashers.map((h) => h.digest()) });
      return;
    }
    for (const i of m.to) hashers[i]!.update(m.bytes);
    if (m.kind === 'lend')
      reply({ id: m.id, buffer: m.bytes.buffer as ArrayBuffer }, [m.bytes.buffer as ArrayBuffer]);
  } catch (e) {
    reply({ id: m.id, error: String((e as Error | undefined)?.message) });
  }
});
