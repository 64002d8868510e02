import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidQueueNameError, PayloadNotJsonError, PayloadTooLargeError, ValidationError } from '../../src/errors.js';
import { freshStorePerTest, STORE_KINDS } from '../support/stores.js';

describe.each(STORE_KINDS)('send (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('resolves with an increasing id once the message is stored, readable from another instance', async () => {
    const a = await store.current.open();
    const first = await a.send('email', { to: 'ann@example.com' });
    const second = await a.send('email', { to: 'bo@example.com' });
    expect(first.duplicate).toBe(false);
    expect(BigInt(second.id)).toBeGreaterThan(BigInt(first.id));
    const b = await store.current.open();
    const [m] = await b.receive('email');
    expect(m?.id).toBe(first.id);
    expect(m?.payload).toEqual({ to: 'ann@example.com' });
  });

  it('round-trips payloads and headers exactly', async () => {
    const s = await store.current.open();
    const payloads = [
      { nested: { deep: [1, 2, { x: null }] }, unicode: 'zoë ✓ 漢字 🚀', quote: '"\'\\' },
      'a plain string',
      42.5,
      null,
      [true, false],
      // JSON.parse makes "__proto__" an own data property; it must stay one.
      JSON.parse('{"__proto__": {"polluted": true}, "constructor": "also data"}'),
    ];
    for (const payload of payloads)
      await s.send('roundtrip', JSON.parse(JSON.stringify(payload)), { headers: { 'x-a': 'ü' } });
    const got = await s.receive('roundtrip', { max: 10 });
    expect(got.map((m) => m.payload)).toEqual(payloads.map((p) => JSON.parse(JSON.stringify(p))));
    expect(got.every((m) => m.headers['x-a'] === 'ü')).toBe(true);
    const last = got[got.length - 1]?.payload as object;
    expect(Object.keys(last)).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('sendMany round-trips awkward payloads exactly: escapes, NUL, lone surrogates, big numbers, key order', async () => {
    const s = await store.current.open();
    const payloads = [
      { b: 1, a: [2, { d: null, c: 'x' }] },
      'quote " backslash \\ slash / tab \t newline \n',
      'carriage \r return, newlines \n\n\n, line separator \u2028, paragraph separator \u2029',
      'nul \u0000 end',
      'lone \ud800 surrogate',
      'pair 🚀',
      1e21,
      -0.000001,
      '',
      [],
      {},
    ];
    // The queue exists first, so the batch takes the plain fast path where the store has one.
    await s.send('awkward', 'first');
    await s.sendMany(
      'awkward',
      payloads.map((payload) => ({ payload })),
    );
    const got = await s.receive('awkward', { max: 100 });
    expect(got.map((m) => JSON.stringify(m.payload))).toEqual(['first', ...payloads].map((p) => JSON.stringify(p)));
  });

  it('sendMany stores all messages in one transaction, in order', async () => {
    const s = await store.current.open();
    const results = await s.sendMany(
      'bulk',
      Array.from({ length: 250 }, (_, i) => ({ payload: { i } })),
    );
    expect(results).toHaveLength(250);
    const got = await s.receive('bulk', { max: 1000 });
    expect(got.map((m) => (m.payload as { i: number }).i)).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect(got.map((m) => m.id)).toEqual(results.map((r) => r.id));
  });

  it('sendMany with keyed, plain, delayed and duplicate items gives each the id of its own message', async () => {
    const s = await store.current.open();
    // 0-149 mixed: every 7th has an ordering key, every 11th repeats an earlier idempotency key,
    // every 13th is delayed; runs of plain items of every length sit between them.
    const items = Array.from({ length: 150 }, (_, i) => ({
      payload: { i },
      options: {
        ...(i % 7 === 3 ? { orderingKey: `k${i % 2}` } : {}),
        ...(i % 11 === 5 ? { idempotencyKey: `idem-${i % 3}` } : {}),
        ...(i % 13 === 0 ? { delayMs: 60_000 } : {}),
      },
    }));
    const results = await s.sendMany('mixed', items);
    const firstOfKey = new Map<string, number>();
    for (const [i, item] of items.entries()) {
      const key = item.options.idempotencyKey;
      const result = results[i] as { id: string; duplicate: boolean };
      if (key !== undefined && firstOfKey.has(key)) {
        expect(result).toEqual({ id: results[firstOfKey.get(key) as number]?.id, duplicate: true });
        continue;
      }
      if (key !== undefined) firstOfKey.set(key, i);
      expect(result.duplicate).toBe(false);
      const stored = await s.message<{ i: number }>(result.id);
      expect(stored?.payload).toEqual({ i });
      expect(stored?.orderingKey ?? null).toBe(item.options.orderingKey ?? null);
      expect(stored?.idempotencyKey ?? null).toBe(key ?? null);
    }
    const fresh = results.filter((r) => !r.duplicate).map((r) => BigInt(r.id));
    expect(fresh).toEqual([...fresh].sort((a, b) => (a < b ? -1 : 1)));
    expect(new Set(fresh).size).toBe(fresh.length);
  });

  it('sendMany is all or nothing: one invalid item stores nothing', async () => {
    const s = await store.current.open();
    await expect(s.sendMany('bulk', [{ payload: 1 }, { payload: () => 1 }])).rejects.toBeInstanceOf(
      PayloadNotJsonError,
    );
    expect((await s.queue('bulk').stats()).ready).toBe(0);
  });

  it('a lone send keeps every option it was given and is counted', async () => {
    const s = await store.current.open();
    // The queue exists first, so the send takes the plain fast path where the store has one.
    await s.send('opts', 'first');
    const runAt = new Date(Date.now() + 60_000);
    const options = {
      priority: 7,
      maxAttempts: 3,
      backoff: { baseMs: 10, factor: 3, maxMs: 900 },
      headers: { 'x-tenant': 'acme', 'x-ü': '✓' },
      correlationId: 'corr-1',
      causationId: 'cause-1',
    };
    const delayed = await s.send('opts', { kind: 'delayed' }, { ...options, delayMs: 60_000 });
    const scheduled = await s.send('opts', { kind: 'scheduled' }, { ...options, runAt });
    const ready = await s.send('opts', { kind: 'ready' }, options);
    const ids = [delayed.id, scheduled.id, ready.id].map(BigInt);
    expect(ids[0]).toBeLessThan(ids[1] as bigint);
    expect(ids[1]).toBeLessThan(ids[2] as bigint);

    const d = await s.message(delayed.id);
    expect(d?.state).toBe('delayed');
    expect(d?.runAt.getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect((await s.message(scheduled.id))?.runAt.getTime()).toBe(runAt.getTime());
    const r = await s.message(ready.id);
    expect(r).toMatchObject({ state: 'ready', priority: 7, maxAttempts: 3, headers: options.headers });
    expect(r).toMatchObject({ correlationId: 'corr-1', causationId: 'cause-1', payload: { kind: 'ready' } });
    // Priority 7 is claimed before the earlier, default-priority 'first'.
    const [claimed] = await s.receive('opts');
    expect(claimed?.id).toBe(ready.id);
    expect(await s.queue('opts').stats()).toMatchObject({ ready: 1, delayed: 2, inFlight: 1, enqueued: 4 });
  });

  it('a batch mixing messages with and without options stores each with its own', async () => {
    const s = await store.current.open();
    // 70 items: runs of 64, 4, 1 and 1 rows where the store batches rows; only item 66 has options.
    const items = Array.from({ length: 70 }, (_, i) => ({
      payload: { i },
      options: i === 66 ? { headers: { 'x-i': '66' }, maxAttempts: 2, correlationId: 'c-66' } : undefined,
    }));
    const sent = await s.sendMany('mixed', items);
    for (const i of [0, 63, 64, 65, 66, 67, 68, 69]) {
      const m = await s.message((sent[i] as { id: string }).id);
      expect(m?.payload).toEqual({ i });
      if (i === 66) expect(m).toMatchObject({ headers: { 'x-i': '66' }, maxAttempts: 2, correlationId: 'c-66' });
      else expect(m).toMatchObject({ headers: {}, correlationId: (sent[i] as { id: string }).id });
    }
    expect((await s.queue('mixed').stats()).ready).toBe(70);
  });

  it('a batch to an existing queue keeps options shared by all its messages and options each has alone', async () => {
    const s = await store.current.open();
    // The queue exists first, so both batches take the plain fast path where the store has one.
    const first = await s.send('plain-opts', 'first');
    const defaultMaxAttempts = (await s.message(first.id))?.maxAttempts;
    const shared = { priority: 5, maxAttempts: 4, headers: { 'x-batch': 'a' }, delayMs: 60_000, causationId: 'c' };
    const same = await s.sendMany(
      'plain-opts',
      Array.from({ length: 5 }, (_, i) => ({ payload: { i }, options: shared })),
    );
    for (const [i, r] of same.entries()) {
      const m = await s.message(r.id);
      expect(m).toMatchObject({ payload: { i }, state: 'delayed', priority: 5, maxAttempts: 4, causationId: 'c' });
      expect(m?.headers).toEqual({ 'x-batch': 'a' });
    }
    const runAt = new Date(Date.now() + 120_000);
    const varied = Array.from({ length: 12 }, (_, i) => ({
      payload: { i },
      options: {
        priority: i % 3,
        ...(i % 4 === 1 ? { headers: { 'x-i': String(i) } } : {}),
        ...(i === 2 ? { runAt } : {}),
        ...(i === 3 ? { delayMs: 60_000 } : {}),
        ...(i === 5 ? { backoff: { baseMs: 5, factor: 2, maxMs: 50 }, maxAttempts: 9 } : {}),
        ...(i % 5 === 0 ? { correlationId: `corr-${i}` } : {}),
      },
    }));
    const sent = await s.sendMany('plain-opts', varied);
    for (const [i, r] of sent.entries()) {
      const m = await s.message(r.id);
      expect(m).toMatchObject({ payload: { i }, priority: i % 3 });
      expect(m?.headers).toEqual(i % 4 === 1 ? { 'x-i': String(i) } : {});
      expect(m?.state).toBe(i === 2 || i === 3 ? 'delayed' : 'ready');
      if (i === 2) expect(m?.runAt.getTime()).toBe(runAt.getTime());
      expect(m?.maxAttempts).toBe(i === 5 ? 9 : defaultMaxAttempts);
      expect(m?.correlationId).toBe(i % 5 === 0 ? `corr-${i}` : r.id);
    }
    expect(await s.queue('plain-opts').stats()).toMatchObject({ ready: 11, delayed: 7, enqueued: 18 });
  });

  it('concurrent sends to several queues count each queue its own messages', async () => {
    const s = await store.current.open();
    await Promise.all([s.send('count-a', 0), s.send('count-b', 0)]);
    await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => s.send('count-a', { i })),
      ...Array.from({ length: 20 }, (_, i) => s.send('count-b', { i })),
    ]);
    expect(await s.queue('count-a').stats()).toMatchObject({ ready: 31, enqueued: 31 });
    expect(await s.queue('count-b').stats()).toMatchObject({ ready: 21, enqueued: 21 });
  });

  it('concurrent sends share commits and each gets its own id', async () => {
    const s = await store.current.open();
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => s.send('burst', { i })));
    expect(new Set(results.map((r) => r.id)).size).toBe(500);
    expect((await s.queue('burst').stats()).ready).toBe(500);
  });

  it('a burst mixing plain, idempotent, ordered and over-limit sends treats each as if sent alone', async () => {
    const s = await store.current.open();
    await s.queue('small').configure({ maxDepth: 3 });
    const payloads: string[] = [];
    const promises: Promise<{ id: string; duplicate: boolean }>[] = [];
    for (let i = 0; i < 60; i++) {
      const payload = `m${i}`;
      const kind = i % 6;
      payloads.push(payload);
      promises.push(
        kind === 1
          ? s.send('mix', payload, { idempotencyKey: 'same' })
          : kind === 2
            ? s.send('mix', payload, { orderingKey: 'k' })
            : kind === 3
              ? s.send('small', payload)
              : s.send('mix', payload),
      );
    }
    type Sent = { payload: string; result: PromiseSettledResult<{ id: string; duplicate: boolean }> };
    const sent: Sent[] = (await Promise.allSettled(promises)).map((result, i) => ({
      payload: payloads[i] as string,
      result,
    }));

    const stored = sent.filter((x) => x.result.status === 'fulfilled' && !x.result.value.duplicate);
    const idOf = (x: Sent) => (x.result as PromiseFulfilledResult<{ id: string }>).value.id;
    // Every stored send's id holds that send's own payload.
    for (const x of stored) expect((await s.message(idOf(x)))?.payload).toBe(x.payload);
    expect(new Set(stored.map(idOf)).size).toBe(stored.length);
    // The idempotent sends collapse to one message, and every duplicate names it.
    const idempotent = sent.filter((_, i) => i % 6 === 1);
    expect(new Set(idempotent.map(idOf)).size).toBe(1);
    expect(
      idempotent.filter((x) => !(x.result as PromiseFulfilledResult<{ duplicate: boolean }>).value.duplicate),
    ).toHaveLength(1);
    // Three of the ten sends to the small queue fit; the rest are refused and store nothing.
    const small = sent.filter((_, i) => i % 6 === 3);
    expect(small.filter((x) => x.result.status === 'fulfilled')).toHaveLength(3);
    expect(small.filter((x) => x.result.status === 'rejected')).toHaveLength(7);
    expect((await s.queue('small').stats()).ready).toBe(3);
    // Ordered sends: one ready, the rest waiting for it; plain ones all ready.
    const mix = await s.queue('mix').stats();
    expect(mix.ready).toBe(30 + 1 + 1);
    expect(mix.waiting).toBe(9);
  });

  it('rejects bad input with clear errors and stores nothing', async () => {
    const s = await store.current.open({ payloadLimitBytes: 1024 });
    await expect(s.send('bad name!', {})).rejects.toBeInstanceOf(InvalidQueueNameError);
    await expect(s.send('', {})).rejects.toBeInstanceOf(InvalidQueueNameError);
    await expect(s.send('q'.repeat(200), {})).rejects.toBeInstanceOf(InvalidQueueNameError);
    await expect(s.send('q', 'x'.repeat(2000))).rejects.toBeInstanceOf(PayloadTooLargeError);
    await expect(s.send('q', undefined)).rejects.toBeInstanceOf(PayloadNotJsonError);
    await expect(s.send('q', { n: 10n })).rejects.toBeInstanceOf(PayloadNotJsonError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(s.send('q', cyclic)).rejects.toBeInstanceOf(PayloadNotJsonError);
    await expect(s.send('q', {}, { delayMs: -1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', {}, { priority: 1.5 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', {}, { maxAttempts: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', {}, { headers: { a: 1 as unknown as string } })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', {}, { idempotencyKey: '' })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', {}, { delay: 5 } as never)).rejects.toThrow(/"delay" is not a send option/);
    const tooBig = await s.send('q', 'x'.repeat(2000)).catch((e: Error) => e.message);
    expect(tooBig).toMatch(/limit is 1024 bytes/);
    expect((await s.queue('q').stats()).ready).toBe(0);
  });

  it('counts multi-byte characters against the payload limit in UTF-8 bytes', async () => {
    const s = await store.current.open({ payloadLimitBytes: 100 });
    await expect(s.send('q', '漢'.repeat(40))).rejects.toBeInstanceOf(PayloadTooLargeError); // 122 bytes with quotes
    await expect(s.send('q', 'a'.repeat(90))).resolves.toMatchObject({ duplicate: false });
  });

  it('a long loop of awaited sends lets timers in the same process run', async () => {
    const s = await store.current.open();
    await s.send('loop', { warm: true });
    // A worker's lease keeper and handler timeouts are timers like this one.
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 1);
    const started = performance.now();
    let sent = 0;
    try {
      while (performance.now() - started < 300) {
        await s.send('loop', { i: sent });
        sent += 1;
      }
    } finally {
      clearInterval(timer);
    }
    expect(sent).toBeGreaterThan(10);
    // The store lets the loop turn at least every 10 ms or so: about 30 turns in 300 ms.
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect((await s.queue('loop').stats()).ready).toBe(sent + 1);
  });
});
