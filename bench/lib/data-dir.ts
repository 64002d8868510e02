import os from 'node:os';
import path from 'node:path';

/**
 * Where SQLite files and the fsync probe live. Both must be on the same disk,
 * since W1 sequential sends are judged against that disk's fsync rate.
 * Override with BENCH_DATA_DIR.
 */
export function benchDataDir(): string {
  return process.env.BENCH_DATA_DIR ?? path.join(os.tmpdir(), 'sluice-bench');
}
