/**
 * Transactions that span the caller's code, on PostgreSQL:
 * - transactional send (outbox): a message exists if and only if the
 *   caller's transaction commits;
 * - transactional completion: a handler's own writes commit with its ack, so
 *   the effect happens exactly once however often the message is delivered.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError, ValidationError } from '../../src/errors.js';
import { counter, createTestStore, PG_URL, STORE_KINDS, type TestStore, waitFor } from '../support/stores.js';

describe.runIf(STORE_KINDS.includes('postgres'))('PostgreSQL: transactional send and completion', () => {
  let store: TestStore;
  let pool: pg.Pool;
  let schema: string;

  beforeEach(async () => {
    store = await createTestStore('postgres');
    schema = (store.location as { schema: string }).schema;
    pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
  });

  afterEach(async () => {
    await pool.end();
    await store.cleanup();
  });

  /** Creates the business tables in the test's schema (after Sluice created it). */
  async function businessTables(): Promise<void> {
    await pool.query(`
      CREATE TABLE "${schema}".orders (id int PRIMARY KEY, total int NOT NULL);
      CREATE TABLE "${schema}".effects (message_id bigint NOT NULL, note text NOT NULL);`);
  }

  async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>, commit: boolean): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query(commit ? 'COMMIT' : 'ROLLBACK');
      return result;
    } finally {
      client.release();
    }
  }

  it('a rolled-back transaction leaves no message; a committed one leaves exactly one', async () => {
    const s = await store.open();
    await businessTables();

    const rolledBack = await inTransaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders VALUES (1, 100)`);
      return s.send('receipts', { order: 1 }, { tx: client });
    }, false);
    expect(await s.message(rolledBack.id)).toBeNull();
    expect(await s.queue('receipts').stats()).toMatchObject({ ready: 0, enqueued: 0 });
    expect(await s.receive('receipts')).toHaveLength(0);

    const committed = await inTransaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders VALUES (2, 250)`);
      const sent = await s.send('receipts', { order: 2 }, { tx: client });
      // Not visible to anyone until the caller commits.
      expect(await s.receive('receipts')).toHaveLength(0);
      return sent;
    }, true);
    const got = await s.receive('receipts', { max: 10 });
    expect(got.map((m) => m.id)).toEqual([committed.id]);
    expect(got[0]?.payload).toEqual({ order: 2 });
    expect((await s.queue('receipts').stats()).enqueued).toBe(1);
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0].n).toBe(1);
  });

  it('sendMany, publish and idempotency keys join the transaction too', async () => {
    const s = await store.open();
    await s.subscribe('order.placed', 'email');
    await s.subscribe('order.placed', 'audit');

    await inTransaction(async (client) => {
      await s.sendMany('bulk', [{ payload: 1 }, { payload: 2 }], { tx: client });
      await s.publish('order.placed', { order: 7 }, { tx: client });
      await s.send('once', 'x', { idempotencyKey: 'k-1', tx: client });
    }, false);
    for (const q of ['bulk', 'email', 'audit', 'once']) expect((await s.queue(q).stats()).ready).toBe(0);
    // The rolled-back key was never recorded: the same key is fresh afterwards.
    expect((await s.send('once', 'y', { idempotencyKey: 'k-1' })).duplicate).toBe(false);

    await inTransaction(async (client) => {
      await s.sendMany('bulk', [{ payload: 1 }, { payload: 2 }], { tx: client });
      const copies = await s.publish('order.placed', { order: 8 }, { tx: client });
      expect(copies.map((c) => c.queue).sort()).toEqual(['audit', 'email']);
      expect((await s.send('once', 'z', { idempotencyKey: 'k-1', tx: client })).duplicate).toBe(true);
    }, true);
    expect((await s.queue('bulk').stats()).ready).toBe(2);
    expect((await s.queue('email').stats()).ready).toBe(1);
    expect((await s.queue('audit').stats()).ready).toBe(1);
    expect((await s.queue('once').stats()).ready).toBe(1);
  });

  it('a worker waiting for messages wakes when the sending transaction commits', async () => {
    const s = await store.open();
    const consumer = await store.open();
    const waiting = consumer.receive('q', { waitMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await inTransaction((client) => s.send('q', 'hello', { tx: client }), true);
    const [m] = await waiting;
    expect(m?.payload).toBe('hello');
    // Well under the one-second poll: the NOTIFY sent inside the transaction woke it.
    expect(Date.now() - started).toBeLessThan(700);
  });

  it('refuses a pool as tx: a pool cannot hold a transaction', async () => {
    const s = await store.open();
    await expect(s.send('q', 1, { tx: pool })).rejects.toBeInstanceOf(ValidationError);
    await expect(s.send('q', 1, { tx: {} })).rejects.toBeInstanceOf(ValidationError);
  });

  it('transactional completion: writes of a failed attempt roll back, so the effect happens once', async () => {
    const s = await store.open();
    await businessTables();
    await s.queue('payments').configure({ backoff: { baseMs: 1, maxMs: 5 } });
    const { id } = await s.send('payments', { amount: 42 });
    const done = counter(1);
    const attempts: number[] = [];
    const worker = s.work<{ amount: number }>(
      'payments',
      async (m, ctx) => {
        attempts.push(m.attempt);
        const tx = ctx.tx as pg.PoolClient;
        await tx.query(`INSERT INTO "${schema}".effects VALUES ($1, $2)`, [m.id, `charge ${m.payload.amount}`]);
        // Sent from the handler: exists only if the handler's transaction commits.
        await ctx.send('receipts', { for: m.id });
        await ctx.once('ledger-entry', async () => 'recorded');
        if (m.attempt < 3) throw new Error('failed after writing');
        done.hit();
      },
      { transactional: true },
    );
    await done.done;
    await worker.close();
    expect(attempts).toEqual([1, 2, 3]);
    await waitFor(async () => (await s.message(id)) === null, { what: 'the ack to commit' });
    const effects = await pool.query(`SELECT message_id::text AS id FROM "${schema}".effects`);
    expect(effects.rows).toEqual([{ id }]);
    expect((await s.queue('receipts').stats()).ready).toBe(1);
    expect(await s.queue('payments').stats()).toMatchObject({ completed: 1, retried: 2 });
  });

  it('transactional completion: a holder that lost its lease commits nothing; the new holder does', async () => {
    const s = await store.open({ sweepIntervalMs: 50 });
    await businessTables();
    const { id } = await s.send('q', 'job');
    let release: () => void = () => {};
    const stalled = new Promise<void>((r) => {
      release = r;
    });
    const failures: unknown[] = [];
    const worker = s.work(
      'q',
      async (m, ctx) => {
        await (ctx.tx as pg.PoolClient).query(`INSERT INTO "${schema}".effects VALUES ($1, 'first holder')`, [m.id]);
        await stalled;
      },
      // One slot and no prefetch: the stalled handler keeps this worker from claiming it again.
      { transactional: true, leaseMs: 60_000, concurrency: 1, prefetch: 0 },
    );
    worker.on('failed', (_m, error) => failures.push(error));
    let second: Awaited<ReturnType<typeof s.receive>>[number] | undefined;
    try {
      await waitFor(async () => (await s.message(id))?.state === 'in_flight', { what: 'the first claim' });
      // The first holder stalls past its lease; another consumer takes the message over.
      await store.sql('UPDATE {schema}sluice_messages SET lease_expires_at = {past} WHERE id = {id}', id);
      [second] = await s.receive('q', { leaseMs: 60_000, waitMs: 5_000 });
      expect(second?.id).toBe(id);
    } finally {
      release();
    }
    await waitFor(() => failures.length > 0, { what: 'the first holder to fail' });
    expect(failures[0]).toBeInstanceOf(LeaseLostError);
    await worker.close();
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO "${schema}".effects VALUES ($1, 'second holder')`, [id]);
      await s.store.messageFinishMany({
        items: [{ id, leaseToken: second?.leaseToken as string, outcome: { kind: 'ack' } }],
        tx: client,
      });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const effects = await pool.query(`SELECT note FROM "${schema}".effects`);
    expect(effects.rows).toEqual([{ note: 'second holder' }]);
    expect(await s.message(id)).toBeNull();
  });

  it('a handler still writing after its timeout cannot reach the transaction', async () => {
    const s = await store.open();
    await businessTables();
    await s.queue('q').configure({ backoff: { baseMs: 1, maxMs: 5 } });
    await s.send('q', 'job');
    const late: { error: unknown } = { error: undefined };
    let lateWriteDone = false;
    const done = counter(1);
    const worker = s.work(
      'q',
      async (m, ctx) => {
        const tx = ctx.tx as pg.PoolClient;
        if (m.attempt === 1) {
          await new Promise((r) => setTimeout(r, 400));
          try {
            await tx.query(`INSERT INTO "${schema}".effects VALUES ($1, 'late')`, [m.id]);
          } catch (error) {
            late.error = error;
          }
          lateWriteDone = true;
          return;
        }
        await tx.query(`INSERT INTO "${schema}".effects VALUES ($1, 'on time')`, [m.id]);
        done.hit();
      },
      { transactional: true, timeoutMs: 150 },
    );
    await done.done;
    await waitFor(() => lateWriteDone, { what: 'the late write to be tried' });
    await worker.close();
    expect(late.error).toBeInstanceOf(Error);
    const effects = await pool.query(`SELECT note FROM "${schema}".effects`);
    expect(effects.rows).toEqual([{ note: 'on time' }]);
  });
});
