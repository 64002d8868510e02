import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidQueueNameError, ValidationError } from '../../src/errors.js';
import { counter, freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('fan-out (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('publish puts one copy in every subscribed queue and returns their ids', async () => {
    const s = await store.current.open();
    await s.subscribe('order.placed', 'email');
    await s.subscribe('order.placed', 'analytics');
    await s.subscribe('order.placed', 'loyalty');
    await s.subscribe('other.topic', 'audit');
    const copies = await s.publish('order.placed', { orderId: 1042 }, { correlationId: 'co-1' });
    expect(copies.map((c) => c.queue).sort()).toEqual(['analytics', 'email', 'loyalty']);
    for (const queue of ['email', 'analytics', 'loyalty']) {
      const [m] = await s.receive(queue);
      expect(m).toMatchObject({ payload: { orderId: 1042 }, correlationId: 'co-1' });
      expect(m?.id).toBe(copies.find((c) => c.queue === queue)?.id);
    }
    expect(await s.receive('audit')).toHaveLength(0);
  });

  it('publishing with no subscribers stores nothing', async () => {
    const s = await store.current.open();
    expect(await s.publish('nobody.listens', 1)).toEqual([]);
  });

  it('a subscription created later receives only later messages; unsubscribe stops delivery', async () => {
    const s = await store.current.open();
    await s.subscribe('t', 'early');
    await s.publish('t', 'first');
    await s.subscribe('t', 'late');
    await s.publish('t', 'second');
    expect((await s.receive('early', { max: 10 })).map((m) => m.payload)).toEqual(['first', 'second']);
    expect((await s.receive('late', { max: 10 })).map((m) => m.payload)).toEqual(['second']);
    expect(await s.unsubscribe('t', 'early')).toBe(true);
    expect(await s.unsubscribe('t', 'early')).toBe(false);
    await s.publish('t', 'third');
    expect(await s.receive('early')).toHaveLength(0);
    expect((await s.subscriptions('t')).map((x) => x.queue)).toEqual(['late']);
  });

  it('filters on headers: equality and any-of', async () => {
    const s = await store.current.open();
    await s.subscribe('order.placed', 'eu-only', { filter: { region: 'eu' } });
    await s.subscribe('order.placed', 'big-markets', { filter: { region: ['eu', 'us'], tier: 'gold' } });
    await s.subscribe('order.placed', 'all');
    await s.publish('order.placed', 1, { headers: { region: 'eu', tier: 'gold' } });
    await s.publish('order.placed', 2, { headers: { region: 'us', tier: 'silver' } });
    await s.publish('order.placed', 3);
    const payloads = async (q: string) => (await s.receive(q, { max: 10 })).map((m) => m.payload);
    expect(await payloads('eu-only')).toEqual([1]);
    expect(await payloads('big-markets')).toEqual([1]);
    expect(await payloads('all')).toEqual([1, 2, 3]);
    await expect(s.subscribe('t', 'q', { filter: { region: 5 } as never })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.subscribe('bad topic', 'q')).rejects.toBeInstanceOf(InvalidQueueNameError);
  });

  it("one subscription's failures and dead letters never touch another's", async () => {
    const s = await store.current.open();
    await s.subscribe('order.placed', 'email');
    await s.subscribe('order.placed', 'analytics');
    await s.queue('email').configure({ maxAttempts: 2, backoff: { baseMs: 1, maxMs: 2 } });
    for (let i = 0; i < 10; i++)
      await s.publish('order.placed', { i }, { orderingKey: 'customer-7', idempotencyKey: `o-${i}` });
    const analytics: number[] = [];
    const done = counter(10);
    const failing = s.work<{ i: number }>('email', async () => {
      throw new Error('smtp down');
    });
    const healthy = s.work<{ i: number }>('analytics', async (m) => {
      analytics.push(m.payload.i);
      done.hit();
    });
    await done.done;
    await waitFor(async () => (await s.queue('email').stats()).dead === 10, { what: 'email dead letters' });
    await Promise.all([failing.close(), healthy.close()]);
    expect(analytics).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await s.queue('analytics').stats()).toMatchObject({ completed: 10, dead: 0, retried: 0 });
    // Idempotency keys dedupe per subscription queue.
    const again = await s.publish('order.placed', { i: 0 }, { idempotencyKey: 'o-0' });
    expect(again.every((c) => c.duplicate)).toBe(true);
  });
});
