import fs from 'node:fs';
import path from 'node:path';
import { now } from './timing.js';

/**
 * The disk's durable-write rate: a 200-byte append and an fdatasync, in a
 * loop, for `ms`, in a scratch file of `dir`. It is the ceiling for durable
 * sends awaited one at a time, and it drifts by a fifth or more within minutes
 * on a shared disk, so W1 measures it again right around its sequential sends.
 */
export function fsyncRate(dir: string, ms: number): number {
  const file = path.join(dir, `fsync-probe-${process.pid}`);
  const fd = fs.openSync(file, 'w');
  const record = Buffer.alloc(200, 1);
  try {
    let count = 0;
    const start = now();
    while (now() - start < ms) {
      fs.writeSync(fd, record);
      fs.fdatasyncSync(fd);
      count += 1;
    }
    return count / ((now() - start) / 1000);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
