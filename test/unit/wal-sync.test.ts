import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CALM_MS, STALL_MS, WalSync } from '../../src/drivers/sqlite/wal-sync.js';

describe('WalSync (group fsync of the write-ahead log)', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

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

  it('after an inline fsync slower than STALL_MS, syncs on the thread pool until the disk has been calm for CALM_MS', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-walsync-'));
    const wal = path.join(dir, 'x.db-wal');
    fs.writeFileSync(wal, 'frames');
    // The disk's answer time for the next fsync of either kind, in (fake) milliseconds.
    let diskMs = 0.2;
    const inline = vi.spyOn(fs, 'fdatasyncSync').mockImplementation(() => {
      vi.advanceTimersByTime(diskMs);
    });
    const pooled = vi.spyOn(fs, 'fdatasync').mockImplementation(((_fd: number, cb: (e: Error | null) => void) => {
      vi.advanceTimersByTime(diskMs);
      setImmediate(() => cb(null));
    }) as typeof fs.fdatasync);
    const sync = new WalSync(wal);

    // A fast disk: lone syncs stay on this thread.
    await sync.sync(true);
    expect([inline.mock.calls.length, pooled.mock.calls.length, sync.stalled]).toEqual([1, 0, false]);
    // One stall: the next syncs leave the event loop, even when they could have been inline.
    diskMs = STALL_MS + 5;
    await sync.sync(true);
    expect([inline.mock.calls.length, sync.stalled]).toEqual([2, true]);
    diskMs = 0.2;
    await sync.sync(true);
    expect([inline.mock.calls.length, pooled.mock.calls.length, sync.stalled]).toEqual([2, 1, true]);
    // Still stalling on the pool: the calm period starts over.
    vi.advanceTimersByTime(CALM_MS - 100);
    diskMs = STALL_MS + 5;
    await sync.sync(true);
    diskMs = 0.2;
    vi.advanceTimersByTime(200);
    await sync.sync(true);
    expect([pooled.mock.calls.length, sync.stalled]).toEqual([3, true]);
    // Calm for CALM_MS: inline again.
    vi.advanceTimersByTime(CALM_MS);
    await sync.sync(true);
    expect([pooled.mock.calls.length, sync.stalled]).toEqual([4, false]);
    await sync.sync(true);
    expect([inline.mock.calls.length, pooled.mock.calls.length]).toEqual([3, 4]);
    sync.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
