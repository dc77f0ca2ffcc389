// The conformance suite every DirectoryService backend must pass, mirroring snix's
// castore/src/directoryservice/tests/mod.rs (test_non_exist, put_get, put_get_multiple_success,
// put_get_multiple_dedup, put_get_foo, upload_reject_unconnected, upload_reject_dangling_pointer,
// upload_reject_wrong_size) plus the parts of our contract snix leaves implicit. Directories are
// snix's fixtures (DIRECTORY_A/B/C/D/WITH_KEEP/COMPLICATED) from fixtures/castore.json.

import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { b3FromHex, b3ToHex } from '../../src/castore/digest.js';
import { Directory } from '../../src/castore/directory.js';
import { directoryNode, fileNode, type Node, symlinkNode } from '../../src/castore/nodes.js';
import type { DirectoryService } from '../../src/directory/service.js';

interface NodeJson {
  type: 'directory' | 'file' | 'symlink';
  digest?: string;
  size?: number;
  executable?: boolean;
  target?: string;
}
interface DirVector {
  name: string;
  entries: (NodeJson & { name: string })[];
  digest: string;
  size: number;
}

const vectors = (
  JSON.parse(readFileSync(new URL('../../fixtures/castore.json', import.meta.url), 'utf8')) as {
    directories: DirVector[];
  }
).directories;

function toNode(j: NodeJson): Node {
  if (j.type === 'symlink') return symlinkNode(j.target!);
  if (j.type === 'directory') return directoryNode(b3FromHex(j.digest!), j.size!);
  return fileNode(b3FromHex(j.digest!), j.size!, j.executable ?? false);
}

/** A snix fixture directory, checked against its known digest and size. */
function fixture(prefix: string): Directory {
  const v = vectors.find((d) => d.name.startsWith(prefix));
  if (v === undefined) throw new Error(`no fixture ${prefix}`);
  const dir = Directory.fromEntries(v.entries.map((e) => [e.name, toNode(e)] as const));
  if (b3ToHex(dir.digest()) !== v.digest || dir.size !== v.size) throw new Error(`fixture ${prefix} is off`);
  return dir;
}

export const DIRECTORY_A = fixture('DIRECTORY_A');
export const DIRECTORY_B = fixture('B =');
export const DIRECTORY_C = fixture('C =');
export const DIRECTORY_D = fixture('D =');
export const DIRECTORY_WITH_KEEP = fixture('DIRECTORY_WITH_KEEP');
export const DIRECTORY_COMPLICATED = fixture('DIRECTORY_COMPLICATED');

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const hexes = (dirs: readonly Directory[]): string[] => dirs.map((d) => b3ToHex(d.digest()));

export interface DirectoryServiceHandle {
  readonly service: DirectoryService;
  /** Releases the backend (closes the database, removes temp files). */
  close(): Promise<void>;
}

/** Runs the suite against fresh services from `make` (one per test). */
export function directoryServiceConformance(name: string, make: () => Promise<DirectoryServiceHandle>): void {
  describe(`DirectoryService conformance: ${name}`, () => {
    let handle: DirectoryServiceHandle;
    let svc: DirectoryService;
    beforeEach(async () => {
      handle = await make();
      svc = handle.service;
    });
    afterEach(async () => {
      await handle.close();
    });

    /** Uploads `dirs` through one putter and expects ERR_BAD_DIRECTORY from a put or from close. */
    async function expectUploadRejected(dirs: readonly Directory[]): Promise<void> {
      const putter = svc.putter();
      let error: unknown;
      try {
        for (const d of dirs) await putter.put(d);
        await putter.close();
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
    }

    it('test_non_exist: a missing directory is undefined and its closure is empty', async () => {
      expect(await svc.get(DIRECTORY_A.digest())).toBeUndefined();
      expect(await collect(svc.getRecursive(DIRECTORY_A.digest()))).toEqual([]);
      expect(await collect(svc.getRecursive(DIRECTORY_COMPLICATED.digest()))).toEqual([]);
    });

    it('put_get: single puts of leaf directories read back equal', async () => {
      for (const dir of [DIRECTORY_A, DIRECTORY_WITH_KEEP]) {
        const digest = await svc.put(dir);
        expect(b3ToHex(digest)).toBe(b3ToHex(dir.digest()));
        const got = await svc.get(digest);
        expect(got?.equals(dir)).toBe(true);
        expect(got?.size).toBe(dir.size);
      }
    });

    it('put_get: a single put whose children are stored succeeds and is idempotent', async () => {
      await svc.put(DIRECTORY_WITH_KEEP);
      const d1 = await svc.put(DIRECTORY_COMPLICATED);
      const d2 = await svc.put(DIRECTORY_COMPLICATED);
      expect(b3ToHex(d1)).toBe(b3ToHex(d2));
      expect((await svc.get(d1))?.equals(DIRECTORY_COMPLICATED)).toBe(true);
    });

    it('a single put with a missing child is rejected and stores nothing', async () => {
      await expect(svc.put(DIRECTORY_COMPLICATED)).rejects.toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
      expect(await svc.get(DIRECTORY_COMPLICATED.digest())).toBeUndefined();
    });

    it('a single put whose child is stored with another size is rejected', async () => {
      await svc.put(DIRECTORY_A);
      const wrong = Directory.fromEntries([['foo', directoryNode(DIRECTORY_A.digest(), 42)]]);
      await expect(svc.put(wrong)).rejects.toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
      expect(await svc.get(wrong.digest())).toBeUndefined();
    });

    it('put_get_multiple_success: a closure uploads and reads back root to leaves', async () => {
      const putter = svc.putter();
      await putter.put(DIRECTORY_WITH_KEEP);
      await putter.put(DIRECTORY_COMPLICATED);
      // Nothing is visible before close().
      expect(await svc.get(DIRECTORY_WITH_KEEP.digest())).toBeUndefined();
      const root = await putter.close();
      expect(b3ToHex(root)).toBe(b3ToHex(DIRECTORY_COMPLICATED.digest()));
      expect((await svc.get(DIRECTORY_WITH_KEEP.digest()))?.equals(DIRECTORY_WITH_KEEP)).toBe(true);
      const closure = await collect(svc.getRecursive(root));
      expect(hexes(closure)).toEqual(hexes([DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP]));
    });

    it('put_get_multiple_dedup: repeated directories and shared children are stored and sent once', async () => {
      const putter = svc.putter();
      await putter.put(DIRECTORY_A);
      await putter.put(DIRECTORY_A);
      await putter.put(DIRECTORY_C);
      const root = await putter.close();
      expect(b3ToHex(root)).toBe(b3ToHex(DIRECTORY_C.digest()));
      expect(hexes(await collect(svc.getRecursive(root)))).toEqual(hexes([DIRECTORY_C, DIRECTORY_A]));
    });

    it('put_get_foo: A, B, D read back breadth first (either order of the children)', async () => {
      const putter = svc.putter();
      for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]) await putter.put(d);
      const root = await putter.close();
      expect(b3ToHex(root)).toBe(b3ToHex(DIRECTORY_D.digest()));
      const got = hexes(await collect(svc.getRecursive(root)));
      expect([
        hexes([DIRECTORY_D, DIRECTORY_A, DIRECTORY_B]),
        hexes([DIRECTORY_D, DIRECTORY_B, DIRECTORY_A]),
      ]).toContainEqual(got);
    });

    it('getRecursive of a non-root directory returns its own closure', async () => {
      const putter = svc.putter();
      for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]) await putter.put(d);
      await putter.close();
      expect(hexes(await collect(svc.getRecursive(DIRECTORY_B.digest())))).toEqual(
        hexes([DIRECTORY_B, DIRECTORY_A]),
      );
    });

    it('upload_reject_unconnected: A, C, B has two roots', async () => {
      await expectUploadRejected([DIRECTORY_A, DIRECTORY_C, DIRECTORY_B]);
      for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_C])
        expect(await svc.get(d.digest())).toBeUndefined();
    });

    it('upload_reject_dangling_pointer: a child not sent in the same session is rejected', async () => {
      await expectUploadRejected([DIRECTORY_C]);
      expect(await svc.get(DIRECTORY_C.digest())).toBeUndefined();
    });

    it('upload_reject_dangling_pointer: even when the child already exists in the store', async () => {
      await svc.put(DIRECTORY_A);
      await expectUploadRejected([DIRECTORY_C]);
      expect(await svc.get(DIRECTORY_C.digest())).toBeUndefined();
    });

    it('upload_reject_wrong_size: an edge whose size differs from the child is rejected', async () => {
      const wrong = Directory.fromEntries([['foo', directoryNode(DIRECTORY_A.digest(), 42)]]);
      await expectUploadRejected([DIRECTORY_A, wrong]);
      expect(await svc.get(wrong.digest())).toBeUndefined();
      expect(await svc.get(DIRECTORY_A.digest())).toBeUndefined();
    });

    it('a putter with a rejected put cannot be closed successfully', async () => {
      const putter = svc.putter();
      await putter.put(DIRECTORY_A);
      await expect(putter.put(DIRECTORY_COMPLICATED)).rejects.toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
      await expect(putter.close()).rejects.toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
      expect(await svc.get(DIRECTORY_A.digest())).toBeUndefined();
    });

    it('closing an empty putter is rejected', async () => {
      await expect(svc.putter().close()).rejects.toMatchObject({ code: 'ERR_BAD_DIRECTORY' });
    });

    it('closing twice returns the same root digest', async () => {
      const putter = svc.putter();
      await putter.put(DIRECTORY_A);
      await putter.put(DIRECTORY_B);
      const first = await putter.close();
      const second = await putter.close();
      expect(b3ToHex(first)).toBe(b3ToHex(DIRECTORY_B.digest()));
      expect(b3ToHex(second)).toBe(b3ToHex(first));
    });

    it('uploading a closure that is partly stored already succeeds', async () => {
      await svc.put(DIRECTORY_A);
      const putter = svc.putter();
      for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]) await putter.put(d);
      expect(b3ToHex(await putter.close())).toBe(b3ToHex(DIRECTORY_D.digest()));
      expect(await collect(svc.getRecursive(DIRECTORY_D.digest()))).toHaveLength(3);
    });

    it('a putter dropped without close stores nothing', async () => {
      const putter = svc.putter();
      await putter.put(DIRECTORY_A);
      await putter.put(DIRECTORY_B);
      expect(await svc.get(DIRECTORY_A.digest())).toBeUndefined();
      expect(await svc.get(DIRECTORY_B.digest())).toBeUndefined();
    });
  });
}
