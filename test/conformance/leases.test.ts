import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError, ValidationError } from '../../src/errors.js';
import { freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('leases and acknowledgements (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('a claim takes a lease with a new token and counts the attempt', async () => {
    const s = await store.current.open({ maintenance: false });
    const { id } = await s.send('q', { n: 1 });
    const [m] = await s.receive('q', { leaseMs: 60_000 });
    expect(m).toMatchObject({ id, attempt: 1, queue: 'q' });
    expect(m?.leaseToken.length).toBeGreaterThanOrEqual(16);
    expect(m?.leaseExpiresAt.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(await s.receive('q')).toHaveLength(0);
    const info = await s.message(id);
    expect(info?.state).toBe('in_flight');
  });

  it('ack removes the message; a second ack is rejected', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q');
    await s.ack(id, m?.leaseToken as string);
    expect(await s.message(id)).toBeNull();
    await expect(s.ack(id, m?.leaseToken as string)).rejects.toBeInstanceOf(LeaseLostError);
    const stats = await s.queue('q').stats();
    expect(stats).toMatchObject({ ready: 0, inFlight: 0, completed: 1, enqueued: 1 });
  });

  it('a wrong token is rejected and changes nothing', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q');
    await expect(s.ack(id, 'AAAAAAAAAAAAAAAA')).rejects.toBeInstanceOf(LeaseLostError);
    await expect(s.nack(id, 'AAAAAAAAAAAAAAAA')).rejects.toBeInstanceOf(LeaseLostError);
    await expect(s.deadLetter(id, 'AAAAAAAAAAAAAAAA')).rejects.toBeInstanceOf(LeaseLostError);
    await expect(s.extendLease(id, 'AAAAAAAAAAAAAAAA', 1000)).rejects.toBeInstanceOf(LeaseLostError);
    expect((await s.message(id))?.state).toBe('in_flight');
    await s.ack(id, m?.leaseToken as string);
  });

  it('an expired lease makes the message claimable again and fences the old token', async () => {
    const s = await store.current.open({ sweepIntervalMs: 50 });
    const { id } = await s.send('q', 1);
    const [first] = await s.receive('q', { leaseMs: 100 });
    const [second] = await s.receive('q', { leaseMs: 30_000, waitMs: 5_000 });
    expect(second?.id).toBe(id);
    expect(second?.attempt).toBe(2);
    expect(second?.leaseToken).not.toBe(first?.leaseToken);
    await expect(s.ack(id, first?.leaseToken as string)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(s.nack(id, first?.leaseToken as string)).rejects.toBeInstanceOf(LeaseLostError);
    expect((await s.message(id))?.attempts).toBe(2);
    await s.ack(id, second?.leaseToken as string);
    expect(await s.message(id)).toBeNull();
  });

  it('a late ack after the lease ran out is rejected even before anyone reclaims', async () => {
    const s = await store.current.open({ maintenance: false });
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q', { leaseMs: 30 });
    await waitFor(async () => Date.now() > (m?.leaseExpiresAt.getTime() ?? 0) + 20);
    await expect(s.ack(id, m?.leaseToken as string)).rejects.toBeInstanceOf(LeaseLostError);
  });

  it('extendLease keeps the message held past its first expiry', async () => {
    const s = await store.current.open({ sweepIntervalMs: 20 });
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q', { leaseMs: 200 });
    const expiry = await s.extendLease(id, m?.leaseToken as string, 5_000);
    expect(expiry.getTime()).toBeGreaterThan(Date.now() + 4_000);
    expect(await s.receive('q', { waitMs: 400 })).toHaveLength(0);
    await s.ack(id, m?.leaseToken as string);
  });

  it('nack with a delay makes the message delayed, then ready again', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q');
    await s.nack(id, m?.leaseToken as string, { delayMs: 300, error: 'smtp 451' });
    const info = await s.message(id);
    expect(info?.state).toBe('delayed');
    expect(info?.errors.map((e) => e.error)).toEqual(['smtp 451']);
    expect(await s.receive('q')).toHaveLength(0);
    const [again] = await s.receive('q', { waitMs: 5_000 });
    expect(again?.id).toBe(id);
    expect(again?.attempt).toBe(2);
    expect((await s.queue('q').stats()).retried).toBe(1);
  });

  it('receive with waitMs returns as soon as a message is sent', async () => {
    const s = await store.current.open();
    const waiting = s.receive('q', { waitMs: 10_000 });
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    await s.send('q', 'hello');
    const [m] = await waiting;
    expect(m?.payload).toBe('hello');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('receive returns at most max messages and validates its options', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 20 }, (_, i) => ({ payload: i })),
    );
    expect(await s.receive('q', { max: 7 })).toHaveLength(7);
    await expect(s.receive('q', { max: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.receive('q', { max: 5000 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.receive('q', { leaseMs: -5 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.ack('not-an-id', 'x')).rejects.toBeInstanceOf(ValidationError);
  });

  it('claims in priority order, then run-at, then id', async () => {
    const s = await store.current.open();
    const low = await s.send('q', 'low', { priority: -1 });
    const a = await s.send('q', 'a');
    const high = await s.send('q', 'high', { priority: 5 });
    const b = await s.send('q', 'b');
    // Sent last, but due a minute ago: ahead of a and b, which were due when sent.
    const early = await s.send('q', 'early', { runAt: new Date(Date.now() - 60_000) });
    const got = await s.receive('q', { max: 10 });
    expect(got.map((m) => m.id)).toEqual([high.id, early.id, a.id, b.id, low.id]);
  });

  it('delayMs and runAt defer delivery', async () => {
    const s = await store.current.open();
    const later = await s.send('q', 'later', { delayMs: 400 });
    const at = await s.send('q', 'at', { runAt: new Date(Date.now() + 300) });
    const now = await s.send('q', 'now');
    const first = await s.receive('q', { max: 10 });
    expect(first.map((m) => m.id)).toEqual([now.id]);
    const stats = await s.queue('q').stats();
    expect(stats.delayed).toBe(2);
    const next = await s.receive('q', { max: 10, waitMs: 5_000 });
    const after = next.length === 2 ? next : [...next, ...(await s.receive('q', { max: 10, waitMs: 5_000 }))];
    expect(after.map((m) => m.id).sort()).toEqual([later.id, at.id].sort());
  });
});
