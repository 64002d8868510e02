import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startChild } from '../support/processes.js';
import { counter, freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('idempotent enqueue (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('a repeated key stores nothing and returns the first id, flagged duplicate', async () => {
    const s = await store.current.open();
    const first = await s.send('email', { v: 1 }, { idempotencyKey: 'receipt-1042' });
    const again = await s.send('email', { v: 2 }, { idempotencyKey: 'receipt-1042' });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ id: first.id, duplicate: true });
    const got = await s.receive('email', { max: 10 });
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ payload: { v: 1 }, idempotencyKey: 'receipt-1042' });
    expect((await s.queue('email').stats()).enqueued).toBe(1);
  });

  it('keys are per queue', async () => {
    const s = await store.current.open();
    const a = await s.send('a', 1, { idempotencyKey: 'k' });
    const b = await s.send('b', 1, { idempotencyKey: 'k' });
    expect(b.duplicate).toBe(false);
    expect(b.id).not.toBe(a.id);
  });

  it('a duplicate never touches an in-flight message', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 'original', { idempotencyKey: 'k', priority: 1 });
    const [m] = await s.receive('q', { leaseMs: 60_000 });
    const dup = await s.send('q', 'changed', { idempotencyKey: 'k', priority: 9, delayMs: 5_000 });
    expect(dup).toEqual({ id, duplicate: true });
    const info = await s.message(id);
    expect(info).toMatchObject({ state: 'in_flight', payload: 'original', priority: 1, attempts: 1 });
    await s.ack(id, m?.leaseToken as string);
  });

  it('still deduplicates after the first was acked and removed, within the window', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 1, { idempotencyKey: 'k' });
    const [m] = await s.receive('q');
    await s.ack(id, m?.leaseToken as string);
    expect(await s.message(id)).toBeNull();
    expect(await s.send('q', 2, { idempotencyKey: 'k' })).toEqual({ id, duplicate: true });
    expect(await s.receive('q')).toHaveLength(0);
  });

  it('after the dedup window the key may be used again', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ dedupWindowMs: 150 });
    const first = await s.send('q', 1, { idempotencyKey: 'k' });
    expect((await s.send('q', 1, { idempotencyKey: 'k' })).duplicate).toBe(true);
    await new Promise((r) => setTimeout(r, 250));
    const later = await s.send('q', 2, { idempotencyKey: 'k' });
    expect(later.duplicate).toBe(false);
    expect(later.id).not.toBe(first.id);
  });

  it('duplicates within one sendMany and across concurrent sends collapse to one', async () => {
    const s = await store.current.open();
    const many = await s.sendMany('q', [
      { payload: 1, options: { idempotencyKey: 'x' } },
      { payload: 2, options: { idempotencyKey: 'x' } },
      { payload: 3 },
    ]);
    expect(many[1]).toEqual({ id: many[0]?.id, duplicate: true });
    const racing = await Promise.all(Array.from({ length: 50 }, (_, i) => s.send('q', i, { idempotencyKey: 'y' })));
    expect(new Set(racing.map((r) => r.id)).size).toBe(1);
    expect(racing.filter((r) => !r.duplicate)).toHaveLength(1);
    expect((await s.queue('q').stats()).ready).toBe(3);
  });

  it('four processes racing with the same 1,500 keys create exactly one message per key', async () => {
    const s = await store.current.open();
    const keys = Array.from({ length: 1_500 }, (_, i) => `order-${i}`);
    const children = Array.from({ length: 4 }, (_, i) =>
      startChild({
        mode: 'send-keys',
        location: store.current.location,
        queue: 'race',
        keys: i % 2 ? [...keys].reverse() : keys,
      }),
    );
    const results = await Promise.all(children.map((c) => c.next('sent')));
    await Promise.all(children.map((c) => c.exited));
    const byKey = new Map<string, Set<string>>();
    let fresh = 0;
    for (const r of results) {
      for (const [key, id, duplicate] of r.results as [string, string, boolean][]) {
        if (!byKey.has(key)) byKey.set(key, new Set());
        byKey.get(key)?.add(id);
        if (!duplicate) fresh += 1;
      }
    }
    // Every caller was told the same id for a key, and exactly one caller created it.
    expect([...byKey.values()].every((ids) => ids.size === 1)).toBe(true);
    expect(fresh).toBe(keys.length);
    const stats = await s.queue('race').stats();
    expect(stats.ready).toBe(keys.length);
    expect(stats.enqueued).toBe(keys.length);
  }, 120_000);
});

describe.each(STORE_KINDS)('idempotent consumers (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('exposes the idempotency key and runs once() effects at most once per key', async () => {
    const s = await store.current.open();
    await s.queue('payments').configure({ backoff: { baseMs: 1, maxMs: 2 } });
    await s.send('payments', { amount: 42 }, { idempotencyKey: 'pay-7' });
    let charges = 0;
    const results: unknown[] = [];
    const done = counter(1);
    const worker = s.work<{ amount: number }>('payments', async (m, ctx) => {
      expect(m.idempotencyKey).toBe('pay-7');
      const receipt = await ctx.once(`charge:${m.idempotencyKey}`, async () => {
        charges += 1;
        return { receipt: `r-${charges}`, amount: m.payload.amount };
      });
      results.push(receipt);
      if (m.attempt < 3) throw new Error('email step failed after charging');
      done.hit();
    });
    await done.done;
    await worker.close();
    expect(charges).toBe(1);
    expect(results).toEqual([
      { receipt: 'r-1', amount: 42 },
      { receipt: 'r-1', amount: 42 },
      { receipt: 'r-1', amount: 42 },
    ]);
  });

  it('once() keys are per queue and a failing effect is not recorded', async () => {
    const s = await store.current.open();
    await s.queue('a').configure({ backoff: { baseMs: 1, maxMs: 2 } });
    let calls = 0;
    const done = counter(1);
    const worker = s.work('a', async (m, ctx) => {
      await ctx.once('effect', async () => {
        calls += 1;
        if (m.attempt === 1) throw new Error('effect failed');
        return 'ok';
      });
      done.hit();
    });
    await s.send('a', 1);
    await done.done;
    await worker.close();
    expect(calls).toBe(2);
    await waitFor(async () => (await s.queue('a').stats()).completed === 1);
  });
});
