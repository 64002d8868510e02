import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_QUEUE_CONFIG } from '../../src/core/queue-config.js';
import { ValidationError } from '../../src/errors.js';
import { counter, freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('queue administration (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('configure merges, validates and persists for other instances', async () => {
    const a = await store.current.open();
    const config = await a.queue('q').configure({ maxAttempts: 7, backoff: { baseMs: 50 } });
    expect(config).toEqual({
      ...DEFAULT_QUEUE_CONFIG,
      maxAttempts: 7,
      backoff: { ...DEFAULT_QUEUE_CONFIG.backoff, baseMs: 50 },
    });
    const b = await store.current.open();
    expect((await b.queue('q').info()).config.maxAttempts).toBe(7);
    await expect(a.queue('q').configure({ maxAttempts: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(a.queue('q').configure({ retries: 3 } as never)).rejects.toThrow(/"retries" is not a queue option/);
    await expect(a.queue('q').configure({ rateLimit: { max: 1 } } as never)).rejects.toBeInstanceOf(ValidationError);
    expect((await b.queue('q').info()).config.maxAttempts).toBe(7);
  });

  it('an unknown queue reports defaults and zero stats', async () => {
    const s = await store.current.open();
    expect(await s.queue('never-used').stats()).toMatchObject({ ready: 0, dead: 0, enqueued: 0, oldestReadyAgeMs: 0 });
    expect((await s.queue('never-used').info()).config).toEqual(DEFAULT_QUEUE_CONFIG);
  });

  it('stats count each state and the age of the oldest ready message', async () => {
    const s = await store.current.open();
    await s.send('q', 'ready-1', { priority: 3 });
    await s.send('q', 'ready-2');
    await s.send('q', 'delayed', { delayMs: 60_000 });
    await s.send('q', 'head', { orderingKey: 'k' });
    await s.send('q', 'waiting', { orderingKey: 'k' });
    await new Promise((r) => setTimeout(r, 60));
    const [m] = await s.receive('q'); // the priority-3 message
    await s.send('q', 'dead');
    const got = await s.receive('q', { max: 10 });
    const dead = got.find((x) => x.payload === 'dead');
    await s.deadLetter(dead?.id as string, dead?.leaseToken as string);
    const stats = await s.queue('q').stats();
    expect(stats).toMatchObject({
      ready: 0,
      delayed: 1,
      waiting: 1,
      inFlight: 3,
      dead: 1,
      enqueued: 6,
      deadLettered: 1,
    });
    for (const x of got.filter((x) => x.payload !== 'dead')) await s.nack(x.id, x.leaseToken, { delayMs: 0 });
    await s.ack(m?.id as string, m?.leaseToken as string);
    const after = await s.queue('q').stats();
    expect(after).toMatchObject({ ready: 2, inFlight: 0, completed: 1, retried: 2 });
  });

  it('the oldest ready age counts from when a message became ready, across priorities', async () => {
    const s = await store.current.open();
    await s.send('q', 'old', { priority: -5 });
    await new Promise((r) => setTimeout(r, 80));
    await s.send('q', 'new', { priority: 5 });
    await s.send('q', 'later', { delayMs: 60_000 });
    const stats = await s.queue('q').stats();
    expect(stats.oldestReadyAgeMs).toBeGreaterThanOrEqual(70);
    expect(stats.oldestReadyAgeMs).toBeLessThan(10_000);
  });

  it('pause stops claiming without losing anything; resume wakes workers', async () => {
    const s = await store.current.open();
    const q = s.queue('q');
    await q.pause();
    await s.send('q', 'held');
    expect(await s.receive('q')).toHaveLength(0);
    expect((await q.info()).paused).toBe(true);
    expect((await q.stats()).paused).toBe(true);
    const done = counter(1);
    const w = s.work('q', async () => done.hit(), { pollIntervalMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100));
    expect(done.seen()).toBe(0);
    await q.resume();
    await done.done;
    await w.close();
    expect(await s.queues()).toEqual([{ name: 'q', paused: false }]);
  });

  it('retention keeps acked messages for inspection, then removes them', async () => {
    const s = await store.current.open({ retentionIntervalMs: 50 });
    await s.queue('q').configure({ retentionMs: 300 });
    const { id } = await s.send('q', 'kept');
    const [m] = await s.receive('q');
    await s.ack(id, m?.leaseToken as string);
    expect((await s.message(id))?.state).toBe('completed');
    expect((await s.queue('q').stats()).completedRetained).toBe(1);
    await waitFor(async () => (await s.message(id)) === null, { what: 'retention to remove it' });
  });

  it('one batch of acks across queues keeps what a retaining queue keeps and deletes the rest', async () => {
    const s = await store.current.open();
    await s.queue('kept').configure({ retentionMs: 60_000 });
    const a = await s.send('kept', 'a');
    const b = await s.send('plain', 'b');
    const [ma] = await s.receive('kept');
    const [mb] = await s.receive('plain');
    const results = await s.store.messageFinishMany({
      items: [
        { id: a.id, leaseToken: ma?.leaseToken as string, outcome: { kind: 'ack' } },
        { id: b.id, leaseToken: mb?.leaseToken as string, outcome: { kind: 'ack' } },
      ],
    });
    expect(results).toEqual([
      { ok: true, state: 'completed' },
      { ok: true, state: 'deleted' },
    ]);
    expect((await s.message(a.id))?.state).toBe('completed');
    expect(await s.message(b.id)).toBeNull();
    expect(await s.queue('kept').stats()).toMatchObject({ inFlight: 0, completed: 1, completedRetained: 1 });
    expect(await s.queue('plain').stats()).toMatchObject({ inFlight: 0, completed: 1, completedRetained: 0 });
  });

  it('completed messages are deleted at once by default', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 'gone');
    const [m] = await s.receive('q');
    await s.ack(id, m?.leaseToken as string);
    expect(await s.message(id)).toBeNull();
  });
});
