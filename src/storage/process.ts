/**
 * Whether a process of this machine (and pid namespace) still runs, by
 * `kill(pid, 0)`: EPERM means it runs under another user. Leases (coordination/local.ts) and
 * pack writers (blob) use it to tell records of live processes from those
 * a killed process left.
 */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
