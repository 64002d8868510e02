/**
 * Several worker processes against one PostgreSQL schema: every message is
 * processed, none twice unless its lease was lost, per-key order holds and at
 * most one message per key runs at a time, across processes.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkLedger, createLedger, readEffects, readLedger } from '../support/postgres-ledger.js';
import { startPostgresWorker } from '../support/postgres-workers.js';
import { createTestStore, PG_URL, STORE_KINDS, type TestStore, waitFor } from '../support/stores.js';

describe.runIf(STORE_KINDS.includes('postgres'))('PostgreSQL: many worker processes on one schema', () => {
  let store: TestStore;
  let admin: pg.Client;
  let schema: string;

  beforeEach(async () => {
    store = await createTestStore('postgres');
    schema = (store.location as { schema: string }).schema;
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });

  afterEach(async () => {
    await admin.end();
    await store.cleanup();
  });

  it('four processes process every message once, keep per-key order, and never run a key twice at once', async () => {
    const s = await store.open();
    await s.queue('jobs').configure({ maxAttempts: 25, backoff: { baseMs: 1, maxMs: 20 } });
    await createLedger(admin, schema);

    const sent = new Map<string, { key: string | null; seq: number | null }>();
    const keys = 30;
    const perKey = 30;
    const free = 1_200;
    const sendRound = async (n: number) => {
      const keyed = Array.from({ length: keys }, (_, k) => ({
        payload: { seq: n },
        options: { orderingKey: `customer-${k}` },
      }));
      const results = await s.sendMany('jobs', keyed);
      results.forEach((r, k) => {
        sent.set(r.id, { key: `customer-${k}`, seq: n });
      });
    };
    // Half the keyed rounds before the workers start, half while they run.
    for (let n = 0; n < perKey / 2; n++) await sendRound(n);
    for (const r of await s.sendMany(
      'jobs',
      Array.from({ length: free / 2 }, () => ({ payload: {} })),
    )) {
      sent.set(r.id, { key: null, seq: null });
    }

    const workers = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        startPostgresWorker({
          location: store.location,
          ledger: { url: PG_URL, schema },
          queue: 'jobs',
          concurrency: 8,
          leaseMs: 30_000,
          failRate: 0.05,
          handlerMs: 2,
          seed: 4_000 + i,
          sweepIntervalMs: 200,
        }),
      ),
    );
    for (let n = perKey / 2; n < perKey; n++) await sendRound(n);
    await Promise.all(
      Array.from({ length: free / 2 / 100 }, async () => {
        const results = await s.sendMany(
          'jobs',
          Array.from({ length: 100 }, () => ({ payload: {} })),
        );
        for (const r of results) sent.set(r.id, { key: null, seq: null });
      }),
    );

    await waitFor(async () => (await readEffects(admin, schema)).size >= sent.size, {
      timeoutMs: 45_000,
      what: 'every message to be processed',
    });
    await waitFor(async () => (await s.queue('jobs').stats()).completed === sent.size, {
      timeoutMs: 10_000,
      what: 'every ack to be counted',
    });
    await Promise.all(workers.map((w) => w.stop()));

    const events = await readLedger(admin, schema);
    const verdict = checkLedger(sent, events);
    expect(verdict.lost).toEqual([]);
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.unexplainedDuplicates).toEqual([]);
    expect(verdict.overlaps).toEqual([]);
    expect(verdict.orderViolations).toEqual([]);
    // Every process took part, and the queue is empty with nothing left in flight.
    const pids = new Set(events.filter((e) => e.kind === 'end').map((e) => e.pid));
    expect(pids.size).toBe(4);
    expect(await s.queue('jobs').stats()).toMatchObject({
      ready: 0,
      delayed: 0,
      waiting: 0,
      inFlight: 0,
      dead: 0,
      enqueued: sent.size,
      completed: sent.size,
    });
  }, 60_000);
});
