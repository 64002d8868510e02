import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/message.js';
import { HandlerTimeoutError, LeaseLostError, UnrecoverableError } from '../../src/errors.js';
import { counter, freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('work() (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('processes every message once and acks it', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 300 }, (_, i) => ({ payload: { i } })),
    );
    const seen: number[] = [];
    const done = counter(300);
    const worker = s.work<{ i: number }>(
      'q',
      async (m) => {
        seen.push(m.payload.i);
        done.hit();
      },
      { concurrency: 16 },
    );
    await done.done;
    await worker.close();
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const stats = await s.queue('q').stats();
    expect(stats).toMatchObject({ ready: 0, inFlight: 0, completed: 300 });
  });

  it('synchronous handlers: returning acks and throwing retries, for thousands in a row', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ backoff: { baseMs: 1, maxMs: 5 } });
    await s.sendMany(
      'q',
      Array.from({ length: 5_000 }, (_, i) => ({ payload: i })),
    );
    const seen = new Map<number, number>();
    const worker = s.work<number>(
      'q',
      (m) => {
        seen.set(m.payload, (seen.get(m.payload) ?? 0) + 1);
        if (m.payload % 1_000 === 7 && m.attempt === 1) throw new Error(`sync failure of ${m.payload}`);
      },
      { concurrency: 1 },
    );
    const failed: string[] = [];
    worker.on('failed', (_m, error: Error) => failed.push(error.message));
    await waitFor(async () => (await s.queue('q').stats()).completed === 5_000, { what: 'every message acked' });
    await worker.close();
    expect(failed.sort()).toEqual([7, 1007, 2007, 3007, 4007].map((i) => `sync failure of ${i}`).sort());
    expect([...seen.values()].filter((n) => n === 2)).toHaveLength(5);
    expect(seen.size).toBe(5_000);
    expect(await s.queue('q').stats()).toMatchObject({ ready: 0, inFlight: 0, retried: 5, completed: 5_000 });
  });

  it('never runs more than concurrency handlers at once', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 60 }, (_, i) => ({ payload: i })),
    );
    let running = 0;
    let peak = 0;
    const done = counter(60);
    const worker = s.work(
      'q',
      async () => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running -= 1;
        done.hit();
      },
      { concurrency: 4 },
    );
    await done.done;
    await worker.close();
    expect(peak).toBe(4);
  });

  it('automatic prefetch holds little beyond the running handlers when they are slow', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 30 }, (_, i) => ({ payload: i })),
    );
    const done = counter(6);
    const worker = s.work(
      'q',
      async () => {
        await new Promise((r) => setTimeout(r, 150));
        done.hit();
      },
      { concurrency: 2 },
    );
    await done.done;
    // With handlers taking 150 ms, 100 ms of work is one message beyond the two running,
    // so the worker mostly holds three. A slot frees before its ack commits, and both
    // slots finish together, so for the length of that commit up to two finished
    // messages are still leased beside the two new ones and the one prefetched.
    const samples: number[] = [];
    for (let i = 0; i < 8; i++) {
      samples.push((await s.queue('q').stats()).inFlight);
      await new Promise((r) => setTimeout(r, 30));
    }
    await worker.close();
    samples.sort((a, b) => a - b);
    expect(samples[samples.length / 2]).toBeLessThanOrEqual(3);
    expect(samples[samples.length - 1]).toBeLessThanOrEqual(5);
  });

  it('automatic prefetch claims fast work in large batches', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 3_000 }, (_, i) => ({ payload: i })),
    );
    let peak = 0;
    const done = counter(3_000);
    const worker = s.work(
      'q',
      async () => {
        done.hit();
      },
      { concurrency: 1 },
    );
    const sampler = setInterval(() => {
      void s
        .queue('q')
        .stats()
        .then((st) => {
          peak = Math.max(peak, st.inFlight);
        });
    }, 5);
    await done.done;
    clearInterval(sampler);
    await worker.close();
    // One slot, yet far more than one message leased at a time.
    expect(peak).toBeGreaterThan(20);
  });

  it('picks up a message sent after it went idle, within milliseconds', async () => {
    const s = await store.current.open();
    const started: number[] = [];
    const done = counter(1);
    const worker = s.work(
      'q',
      async () => {
        started.push(Date.now());
        done.hit();
      },
      { pollIntervalMs: 60_000 },
    );
    await new Promise((r) => setTimeout(r, 100));
    const sentAt = Date.now();
    await s.send('q', 'wake');
    await done.done;
    await worker.close();
    expect((started[0] as number) - sentAt).toBeLessThan(500);
  });

  it('retries a failing handler with backoff, then succeeds', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ backoff: { baseMs: 20, factor: 2, maxMs: 100 } });
    const { id } = await s.send('q', 'flaky');
    const attempts: number[] = [];
    const done = counter(1);
    const worker = s.work('q', async (m) => {
      attempts.push(m.attempt);
      if (m.attempt < 3) throw new Error(`smtp 451 on attempt ${m.attempt}`);
      done.hit();
    });
    await done.done;
    await worker.close();
    expect(attempts).toEqual([1, 2, 3]);
    expect(await s.message(id)).toBeNull();
    expect(await s.queue('q').stats()).toMatchObject({ retried: 2, completed: 1, deadLettered: 0 });
  });

  it('dead-letters after exactly maxAttempts, keeping the error history', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxAttempts: 3, backoff: { baseMs: 1, maxMs: 5 } });
    const { id } = await s.send('q', 'poison', { correlationId: 'corr-1' });
    let calls = 0;
    const worker = s.work('q', async (m) => {
      calls += 1;
      throw new Error(`bad payload (attempt ${m.attempt})`);
    });
    await waitFor(async () => (await s.queue('q').stats()).dead === 1, { what: 'the dead letter' });
    await worker.close();
    expect(calls).toBe(3);
    const [dead] = await s.queue('q').deadLetters();
    expect(dead).toMatchObject({ id, state: 'dead', deadReason: 'max_attempts', attempts: 3, correlationId: 'corr-1' });
    expect(dead?.errors.map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(dead?.errors[2]?.error).toMatch(/bad payload \(attempt 3\)/);
  });

  it('a per-message maxAttempts overrides the queue', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxAttempts: 10, backoff: { baseMs: 1, maxMs: 2 } });
    await s.send('q', 'x', { maxAttempts: 2 });
    let calls = 0;
    const worker = s.work('q', async () => {
      calls += 1;
      throw new Error('no');
    });
    await waitFor(async () => (await s.queue('q').stats()).dead === 1);
    await worker.close();
    expect(calls).toBe(2);
  });

  it('UnrecoverableError dead-letters at once', async () => {
    const s = await store.current.open();
    await s.send('q', { orderId: 'malformed' });
    let calls = 0;
    const worker = s.work('q', async () => {
      calls += 1;
      throw new UnrecoverableError('order has no lines');
    });
    await waitFor(async () => (await s.queue('q').stats()).dead === 1);
    await worker.close();
    expect(calls).toBe(1);
    const [dead] = await s.queue('q').deadLetters();
    expect(dead?.deadReason).toBe('unrecoverable');
    expect(dead?.errors[0]?.error).toMatch(/order has no lines/);
  });

  it('a custom retry delay is used', async () => {
    const s = await store.current.open();
    await s.send('q', 1);
    const times: number[] = [];
    const done = counter(2);
    const worker = s.work(
      'q',
      async (m) => {
        times.push(Date.now());
        done.hit();
        if (m.attempt === 1) throw new Error('later');
      },
      { retryDelayMs: () => 300 },
    );
    await done.done;
    await worker.close();
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(250);
  });

  it('extends the lease while a slow handler runs, so it is not redelivered', async () => {
    const s = await store.current.open({ sweepIntervalMs: 20 });
    await s.send('q', 'slow');
    let calls = 0;
    const done = counter(1);
    const worker = s.work(
      'q',
      async () => {
        calls += 1;
        await new Promise((r) => setTimeout(r, 700));
        done.hit();
      },
      { leaseMs: 150 },
    );
    await done.done;
    await new Promise((r) => setTimeout(r, 200));
    await worker.close();
    expect(calls).toBe(1);
    expect(await s.queue('q').stats()).toMatchObject({ completed: 1, retried: 0 });
  });

  it('a handler past its timeout fails the attempt and sees its signal abort', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxAttempts: 1 });
    await s.send('q', 'hang');
    let reason: unknown;
    const worker = s.work(
      'q',
      async (_m, ctx) => {
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        reason = ctx.signal.reason;
      },
      { timeoutMs: 100 },
    );
    await waitFor(async () => (await s.queue('q').stats()).dead === 1);
    await worker.close();
    expect(reason).toBeInstanceOf(HandlerTimeoutError);
    const [dead] = await s.queue('q').deadLetters();
    expect(dead?.errors[0]?.error).toMatch(/did not finish within 100 ms/);
  });

  it('aborts the signal when the lease is lost, and the stale ack changes nothing', async () => {
    const s = await store.current.open({ sweepIntervalMs: 20 });
    const { id } = await s.send('q', 'stolen');
    let aborted: unknown;
    const release: { fn?: () => void } = {};
    const worker = s.work(
      'q',
      async (_m, ctx) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = ctx.signal.reason;
        });
        await new Promise<void>((resolve) => {
          release.fn = resolve;
        });
      },
      { leaseMs: 300, concurrency: 1, prefetch: 0 },
    );
    await waitFor(() => release.fn !== undefined);
    // Another consumer "steals" the message: its lease is forced to expire and it is reclaimed.
    const info = await s.message(id);
    expect(info?.state).toBe('in_flight');
    await store.current.sql('UPDATE {schema}sluice_messages SET lease_expires_at = {past} WHERE id = {id}', id);
    const [other] = await s.receive('q', { waitMs: 5_000, leaseMs: 60_000 });
    expect(other?.id).toBe(id);
    await waitFor(() => aborted !== undefined, { what: 'the abort' });
    expect(aborted).toBeInstanceOf(LeaseLostError);
    release.fn?.();
    await worker.close();
    // The new holder still holds it.
    expect((await s.message(id))?.state).toBe('in_flight');
    await s.ack(id, other?.leaseToken as string);
  });

  it('close() lets running handlers finish and releases buffered messages at once', async () => {
    const s = await store.current.open();
    await s.sendMany(
      'q',
      Array.from({ length: 10 }, (_, i) => ({ payload: i })),
    );
    const started = counter(2);
    let finished = 0;
    const worker = s.work(
      'q',
      async () => {
        started.hit();
        await new Promise((r) => setTimeout(r, 200));
        finished += 1;
      },
      { concurrency: 2, prefetch: 8 },
    );
    await started.done;
    await worker.close();
    expect(finished).toBe(2);
    const stats = await s.queue('q').stats();
    expect(stats).toMatchObject({ inFlight: 0, ready: 8, completed: 2 });
    // Released messages got their attempt back.
    const [next] = await s.receive('q');
    expect(next?.attempt).toBe(1);
  });

  it('close() in the middle of a fast backlog leaves nothing leased, a claim on its way included', async () => {
    // With fast handlers and a backlog, a worker on a store reached over the network starts its
    // next claim before running the batch it has. Closing right after that third claim started
    // leaves it on its way when the fetch loop stops: its messages must be released too.
    const s = await store.current.open();
    const total = 5_000;
    for (let i = 0; i < total; i += 1_000) {
      await s.sendMany(
        'q',
        Array.from({ length: 1_000 }, (_, k) => ({ payload: i + k })),
      );
    }
    const seen = new Set<number>();
    let handled = 0;
    let claims = 0;
    let closed: Promise<void> | null = null;
    const claim = s.store.messageClaim.bind(s.store);
    s.store.messageClaim = (params) => {
      claims += 1;
      if (claims === 3) setImmediate(() => (closed = worker.close()));
      return claim(params);
    };
    const worker = s.work<number>(
      'q',
      (m) => {
        seen.add(m.payload);
        handled += 1;
      },
      { concurrency: 32 },
    );
    await waitFor(() => closed !== null);
    await closed;
    expect(seen.size).toBe(handled);
    const stats = await s.queue('q').stats();
    expect(stats.inFlight).toBe(0);
    expect(stats.completed).toBe(handled);
    expect(stats.ready).toBe(total - handled);
  });

  it('close() after the grace period aborts stragglers and releases them', async () => {
    const s = await store.current.open();
    const { id } = await s.send('q', 'stuck');
    const started = counter(1);
    let aborted = false;
    const worker = s.work(
      'q',
      async (_m, ctx) => {
        started.hit();
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        );
      },
      { shutdownGraceMs: 100 },
    );
    await started.done;
    const t0 = Date.now();
    await worker.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(aborted).toBe(true);
    const info = await s.message(id);
    expect(info).toMatchObject({ state: 'ready', attempts: 0 });
  });

  it('emits completed and failed events', async () => {
    const s = await store.current.open();
    await s.queue('q').configure({ maxAttempts: 1 });
    await s.send('q', 'ok');
    await s.send('q', 'bad');
    const completed: string[] = [];
    const failed: string[] = [];
    const done = counter(2);
    const worker = s.work<string>('q', async (m) => {
      if (m.payload === 'bad') throw new Error('bad');
    });
    worker.on('completed', (m: Message<string>) => {
      completed.push(m.payload);
      done.hit();
    });
    worker.on('failed', (m: Message<string>) => {
      failed.push(m.payload);
      done.hit();
    });
    await done.done;
    await worker.close();
    expect(completed).toEqual(['ok']);
    expect(failed).toEqual(['bad']);
  });
});
