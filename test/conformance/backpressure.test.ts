import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QueueFullError } from '../../src/errors.js';
import { startChild } from '../support/processes.js';
import { freshStorePerTest, STORE_KINDS } from '../support/stores.js';

describe.each(STORE_KINDS)('backpressure and limits (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('a send past maxDepth fails with QueueFullError and a retry-after hint', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxDepth: 3 });
    await s.sendMany('q', [{ payload: 1 }, { payload: 2 }]);
    await s.send('q', 3);
    const error = await s.send('q', 4).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueFullError);
    expect(error).toMatchObject({ queue: 'q', code: 'SLUICE_QUEUE_FULL' });
    expect((error as QueueFullError).retryAfterMs).toBeGreaterThan(0);
    // All or nothing for a batch that does not fit.
    const [m] = await s.receive('q');
    await s.ack(m?.id as string, m?.leaseToken as string);
    await expect(s.sendMany('q', [{ payload: 5 }, { payload: 6 }])).rejects.toBeInstanceOf(QueueFullError);
    expect((await s.queue('q').stats()).ready).toBe(2);
    await s.send('q', 5);
    // A duplicate is not a new message, so it passes a full queue.
    await s.queue('q').configure({ maxDepth: 4 });
    const keyed = await s.send('q', 'k', { idempotencyKey: 'k' });
    await expect(s.send('q', 'k', { idempotencyKey: 'k' })).resolves.toEqual({ id: keyed.id, duplicate: true });
  });

  it('in flight and delayed messages count toward the depth; dead letters do not', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxDepth: 2 });
    await s.send('q', 'a');
    await s.send('q', 'b', { delayMs: 60_000 });
    const [m] = await s.receive('q');
    await expect(s.send('q', 'c')).rejects.toBeInstanceOf(QueueFullError);
    await s.deadLetter(m?.id as string, m?.leaseToken as string);
    await expect(s.send('q', 'c')).resolves.toMatchObject({ duplicate: false });
  });

  it("onFull 'wait' waits for room, up to fullWaitMs", async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxDepth: 1, onFull: 'wait', fullWaitMs: 3_000 });
    await s.send('q', 1);
    const t0 = Date.now();
    const waiting = s.send('q', 2);
    setTimeout(async () => {
      const [m] = await s.receive('q');
      await s.ack(m?.id as string, m?.leaseToken as string);
    }, 200);
    await expect(waiting).resolves.toMatchObject({ duplicate: false });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    await s.queue('q').configure({ fullWaitMs: 100 });
    await expect(s.send('q', 3)).rejects.toBeInstanceOf(QueueFullError);
  });

  it('globalConcurrency bounds messages in flight across consumers', async () => {
    const s = await store.current.open();
    const t = await store.current.open();
    await s.queue('q').configure({ globalConcurrency: 3 });
    await s.sendMany(
      'q',
      Array.from({ length: 10 }, (_, i) => ({ payload: i })),
    );
    const a = await s.receive('q', { max: 10 });
    const b = await t.receive('q', { max: 10 });
    expect(a.length + b.length).toBe(3);
    await s.ack(a[0]?.id as string, a[0]?.leaseToken as string);
    expect(await t.receive('q', { max: 10 })).toHaveLength(1);
  });

  it('globalConcurrency holds for workers and lets them drain the queue', async () => {
    const s = await store.current.open();
    const t = await store.current.open();
    await s.queue('q').configure({ globalConcurrency: 2 });
    await s.sendMany(
      'q',
      Array.from({ length: 30 }, (_, i) => ({ payload: i })),
    );
    let running = 0;
    let peak = 0;
    let done = 0;
    const handler = async () => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running -= 1;
      done += 1;
    };
    const w1 = s.work('q', handler, { concurrency: 8 });
    const w2 = t.work('q', handler, { concurrency: 8 });
    const deadline = Date.now() + 20_000;
    while (done < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await Promise.all([w1.close(), w2.close()]);
    expect(done).toBe(30);
    expect(peak).toBeLessThanOrEqual(2);
  });

  it('a rate limit caps claims per window, measured across two processes', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ rateLimit: { max: 20, perMs: 500 } });
    await s.sendMany(
      'q',
      Array.from({ length: 200 }, (_, i) => ({ payload: i })),
    );
    // Both start claiming at the same moment, however long each took to boot: the start time is
    // written for them once both are ready (a fixed time missed a child that booted slowly under load).
    const startFile = path.join(os.tmpdir(), `sluice-start-${process.pid}-${Date.now()}`);
    const children = [0, 1].map(() =>
      startChild({
        mode: 'claim-times',
        location: store.current.location,
        queue: 'q',
        durationMs: 1_700,
        max: 10,
        startFile,
      }),
    );
    await Promise.all(children.map((c) => c.next('ready')));
    fs.writeFileSync(`${startFile}.tmp`, String(Date.now() + 200));
    fs.renameSync(`${startFile}.tmp`, startFile);
    const results = await Promise.all(children.map((c) => c.next('claimed')));
    fs.rmSync(startFile, { force: true });
    await Promise.all(children.map((c) => c.exited));
    const times = results.flatMap((r) => r.times as number[]).sort((a, b) => a - b);
    // Both processes together stay within 20 per 500 ms window: at most 4 windows fit in 1.7 s,
    // and the limit lets through at least a full window.
    expect(times.length).toBeGreaterThanOrEqual(20);
    expect(times.length).toBeLessThanOrEqual(80);
    // No 500 ms span anywhere holds more than two windows' worth.
    for (let i = 0; i < times.length; i++) {
      const within = times.filter((x) => x >= (times[i] as number) && x < (times[i] as number) + 500).length;
      expect(within).toBeLessThanOrEqual(40);
    }
    expect(results.every((r) => (r.times as number[]).length > 0)).toBe(true);
  }, 60_000);
});
