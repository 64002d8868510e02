import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { completionOrderByKey, readLedger } from '../support/ledger.js';
import { startChild } from '../support/processes.js';
import { counter, freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('per-key ordering (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('delivers one message per key at a time, in send order', async () => {
    const s = await store.current.open();
    const a1 = await s.send('q', 'a1', { orderingKey: 'a' });
    const a2 = await s.send('q', 'a2', { orderingKey: 'a' });
    const b1 = await s.send('q', 'b1', { orderingKey: 'b' });
    const free = await s.send('q', 'free');
    const first = await s.receive('q', { max: 10 });
    expect(first.map((m) => m.id)).toEqual([a1.id, b1.id, free.id]);
    expect((await s.queue('q').stats()).waiting).toBe(1);
    expect(await s.receive('q', { max: 10 })).toHaveLength(0);
    await s.ack(a1.id, first[0]?.leaseToken as string);
    const next = await s.receive('q', { max: 10 });
    expect(next.map((m) => m.id)).toEqual([a2.id]);
  });

  it('a message waiting for its retry holds its key; other keys keep flowing', async () => {
    const s = await store.current.open();
    const a1 = await s.send('q', 'a1', { orderingKey: 'a' });
    await s.send('q', 'a2', { orderingKey: 'a' });
    const [m] = await s.receive('q');
    await s.nack(a1.id, m?.leaseToken as string, { delayMs: 300 });
    const b1 = await s.send('q', 'b1', { orderingKey: 'b' });
    const now = await s.receive('q', { max: 10 });
    expect(now.map((x) => x.id)).toEqual([b1.id]);
    const retried = await s.receive('q', { max: 10, waitMs: 5_000 });
    expect(retried.map((x) => x.id)).toEqual([a1.id]);
  });

  it('a dead-lettered head lets its key move on', async () => {
    const s = await store.current.open();
    const a1 = await s.send('q', 'a1', { orderingKey: 'a' });
    const a2 = await s.send('q', 'a2', { orderingKey: 'a' });
    const [m] = await s.receive('q');
    await s.deadLetter(a1.id, m?.leaseToken as string, { error: 'poison' });
    const [next] = await s.receive('q');
    expect(next?.id).toBe(a2.id);
    // Redriven while the key is busy, it waits its turn instead of running alongside.
    await s.queue('q').redrive({ ids: [a1.id] });
    expect(await s.receive('q')).toHaveLength(0);
    await s.ack(a2.id, next?.leaseToken as string);
    const [again] = await s.receive('q');
    expect(again?.id).toBe(a1.id);
  });

  it('send order wins over priority within a key; a delayed head holds the key', async () => {
    const s = await store.current.open();
    const a1 = await s.send('q', 'a1', { orderingKey: 'a', delayMs: 300 });
    const a2 = await s.send('q', 'a2', { orderingKey: 'a', priority: 100 });
    expect(await s.receive('q', { max: 10 })).toHaveLength(0);
    const [first] = await s.receive('q', { max: 10, waitMs: 5_000 });
    expect(first?.id).toBe(a1.id);
    await s.ack(a1.id, first?.leaseToken as string);
    const [second] = await s.receive('q');
    expect(second?.id).toBe(a2.id);
  });

  it('a worker with many slots still completes each key strictly in order', async () => {
    const s = await store.current.open();
    // Enough attempts that random failures never dead-letter a message.
    await s.queue('q').configure({ maxAttempts: 100, backoff: { baseMs: 1, maxMs: 3 } });
    let seed = 42;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const keys = 20;
    const perKey = 15;
    for (let n = 0; n < perKey; n++) {
      await s.sendMany(
        'q',
        Array.from({ length: keys }, (_, k) => ({ payload: { k, n }, options: { orderingKey: `k${k}` } })),
      );
    }
    const completed = new Map<number, number[]>();
    const inFlight = new Set<number>();
    let overlap = false;
    const done = counter(keys * perKey);
    let failures = 0;
    const worker = s.work<{ k: number; n: number }>(
      'q',
      async (m) => {
        if (inFlight.has(m.payload.k)) overlap = true;
        inFlight.add(m.payload.k);
        await new Promise((r) => setTimeout(r, random() * 3));
        inFlight.delete(m.payload.k);
        if (random() < 0.15 && failures < 60) {
          failures += 1;
          throw new Error('random failure');
        }
        const list = completed.get(m.payload.k) ?? [];
        list.push(m.payload.n);
        completed.set(m.payload.k, list);
        done.hit();
      },
      { concurrency: 32 },
    );
    await done.done;
    await worker.close();
    expect(overlap).toBe(false);
    for (let k = 0; k < keys; k++) expect(completed.get(k)).toEqual(Array.from({ length: perKey }, (_, n) => n));
  });

  it('holds order across processes under random failures and a killed worker', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxAttempts: 50, backoff: { baseMs: 1, maxMs: 20 } });
    const keys = 40;
    const perKey = 25;
    for (let n = 0; n < perKey; n++) {
      await s.sendMany(
        'q',
        Array.from({ length: keys }, (_, k) => ({ payload: { seq: n }, options: { orderingKey: `k${k}` } })),
      );
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-order-'));
    const ledger = path.join(dir, 'ledger.db');
    const start = (i: number) =>
      startChild({
        mode: 'work',
        location: store.current.location,
        queue: 'q',
        ledger,
        concurrency: 8,
        leaseMs: 1_000,
        sweepIntervalMs: 100,
        failRate: 0.1,
        seed: 1000 + i,
        handlerMs: 1,
      });
    const children = [start(0), start(1), start(2)];
    await Promise.all(children.map((c) => c.next('ready')));
    await new Promise((r) => setTimeout(r, 150));
    children[0]?.process.kill('SIGKILL');
    await waitFor(async () => (await s.queue('q').stats()).completed === keys * perKey, {
      timeoutMs: 60_000,
      what: 'every message to complete',
    });
    for (const c of children.slice(1)) c.process.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    const order = completionOrderByKey(readLedger(ledger));
    expect(order.size).toBe(keys);
    for (const [, seqs] of order) expect(seqs).toEqual(Array.from({ length: perKey }, (_, n) => n));
    fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});
