import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WalSync } from '../../src/drivers/sqlite/wal-sync.js';

describe('WalSync (group fsync of the write-ahead log)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('callers during a running fsync share exactly one next fsync', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-walsync-'));
    const wal = path.join(dir, 'x.db-wal');
    fs.writeFileSync(wal, 'frames');
    const started: number[] = [];
    const finishers: (() => void)[] = [];
    vi.spyOn(fs, 'fdatasync').mockImplementation(((fd: number, cb: (e: Error | null) => void) => {
      started.push(fd);
      finishers.push(() => cb(null));
    }) as typeof fs.fdatasync);
    const sync = new WalSync(wal);
    const first = sync.sync();
    // Commits that land while the first fsync runs must wait for a later one...
    const second = sync.sync();
    const third = sync.sync();
    expect(second).toBe(third);
    expect(started).toHaveLength(1);
    let secondDone = false;
    void second.then(() => {
      secondDone = true;
    });
    finishers[0]?.();
    await first;
    await new Promise((r) => setImmediate(r));
    // ...which starts only after the first finished, and covers both.
    expect(started).toHaveLength(2);
    expect(secondDone).toBe(false);
    finishers[1]?.();
    await Promise.all([second, third]);
    expect(started).toHaveLength(2);
    sync.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports a failed fsync to its callers and recovers for the next', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-walsync-'));
    const wal = path.join(dir, 'x.db-wal');
    fs.writeFileSync(wal, 'frames');
    let fail = true;
    vi.spyOn(fs, 'fdatasync').mockImplementation(((_fd: number, cb: (e: Error | null) => void) => {
      const error = fail ? Object.assign(new Error('EIO'), { code: 'EIO' }) : null;
      fail = false;
      setImmediate(() => cb(error));
    }) as typeof fs.fdatasync);
    const sync = new WalSync(wal);
    await expect(sync.sync()).rejects.toThrow('EIO');
    await expect(sync.sync()).resolves.toBeUndefined();
    sync.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
