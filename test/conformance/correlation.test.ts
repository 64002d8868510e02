import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { counter, freshStorePerTest, STORE_KINDS } from '../support/stores.js';

describe.each(STORE_KINDS)('correlation and causation (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('a root message is its own correlation id; a given one is kept', async () => {
    const s = await store.current.open();
    const root = await s.send('q', 1);
    const given = await s.send('q', 2, { correlationId: 'req-77' });
    const [a, b] = await s.receive('q', { max: 2 });
    expect(a).toMatchObject({ id: root.id, correlationId: root.id, causationId: null });
    expect(b).toMatchObject({ id: given.id, correlationId: 'req-77', causationId: null });
  });

  it('a message sent from a handler inherits the correlation id and records its cause', async () => {
    const s = await store.current.open();
    const { id: orderId } = await s.send('orders', { order: 1042 }, { correlationId: 'checkout-9' });
    const done = counter(3);
    const seen: Record<string, { correlationId: string; causationId: string | null; id: string }> = {};
    const w1 = s.work('orders', async (m, ctx) => {
      seen.order = m;
      await ctx.send('email', { to: 'ann' }); // through the context
      // Through the instance: inherited all the same, across awaits.
      await new Promise((r) => setTimeout(r, 5));
      await s.send('analytics', { event: 'order' });
      done.hit();
    });
    const w2 = s.work('email', async (m) => {
      seen.email = m;
      done.hit();
    });
    const w3 = s.work('analytics', async (m) => {
      seen.analytics = m;
      done.hit();
    });
    await done.done;
    await Promise.all([w1.close(), w2.close(), w3.close()]);
    expect(seen.email).toMatchObject({ correlationId: 'checkout-9', causationId: orderId });
    expect(seen.analytics).toMatchObject({ correlationId: 'checkout-9', causationId: orderId });
  });

  it('sends outside any handler do not inherit', async () => {
    const s = await store.current.open();
    const done = counter(1);
    const w = s.work('a', async () => {
      done.hit();
    });
    await s.send('a', 1);
    await done.done;
    const { id } = await s.send('b', 2);
    const [m] = await s.receive('b');
    expect(m).toMatchObject({ correlationId: id, causationId: null });
    await w.close();
  });

  it('redrive keeps correlation and causation', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 1, { correlationId: 'c', causationId: '12' });
    const [m] = await s.receive('q');
    await s.deadLetter(id, m?.leaseToken as string);
    await s.queue('q').redrive({ ids: [id] });
    const [again] = await s.receive('q');
    expect(again).toMatchObject({ id, correlationId: 'c', causationId: '12' });
  });
});
