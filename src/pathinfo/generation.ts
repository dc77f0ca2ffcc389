/**
 * A change stamp for the path infos of a cache root, shared by every process
 * on it (the same machine, as leases assume): each put or delete of a path
 * info appends one byte to `<root>/pathinfo.gen` once its batch is written,
 * and bumps an in-process counter (all an in-memory cache has). A reader that
 * keeps something made from path infos (the server's finished narinfo
 * responses) takes the stamp before it reads the database and reuses its copy
 * only while the stamp is unchanged: one `stat`, no database round trip. So
 * once a gc, verify or add has returned, no copy made before it is reused.
 * The file is truncated when it passes 64 KiB; the stamp (inode, size, mtime)
 * still changes.
 */

import { closeSync, fstatSync, ftruncateSync, openSync, statSync, writeSync } from 'node:fs';

const MAX_BYTES = 64 * 1024;

export class PathInfoGeneration {
  private local = 0;

  /** `file`: the shared stamp file; without one the stamp is this process's counter. */
  constructor(readonly file?: string) {}

  /** Record a change (after it is written). */
  bump(): void {
    this.local++;
    if (this.file === undefined) return;
    const fd = openSync(this.file, 'a');
    try {
      writeSync(fd, '.');
      if (fstatSync(fd).size > MAX_BYTES) ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
  }

  /** The current stamp: equal stamps mean no path info changed in between. */
  current(): string {
    if (this.file === undefined) return String(this.local);
    const st = statSync(this.file, { throwIfNoEntry: false });
    return st === undefined
      ? `${this.local}`
      : `${this.local} ${st.ino} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`;
  }
}
