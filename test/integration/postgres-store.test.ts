/**
 * What is particular to the PostgreSQL store: opening (concurrent migrations,
 * schema names, a newer schema), clear errors when the database cannot be
 * reached, and ids outside the bigint range.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sluice } from '../../src/client/sluice.js';
import { CLAIM_SQL } from '../../src/drivers/postgres/postgres-claim.js';
import { ACK_UNLOCKED_SQL, LOCK_LEASED } from '../../src/drivers/postgres/postgres-settle.js';
import { PostgresStore } from '../../src/drivers/postgres/postgres-store.js';
import { SchemaTooNewError, StoreUnavailableError, ValidationError } from '../../src/errors.js';
import { createTestStore, memoryLogger, PG_URL, STORE_KINDS, type TestStore } from '../support/stores.js';

describe.runIf(STORE_KINDS.includes('postgres'))('PostgreSQL store', () => {
  let admin: pg.Client;
  let schema: string;

  beforeEach(async () => {
    schema = `sluice_t_${randomBytes(6).toString('hex')}`;
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });

  afterEach(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  it('many processes opening a new schema at once migrate it exactly once', async () => {
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStore.open({ url: PG_URL, schema })));
    const { rows } = await admin.query(`SELECT version FROM "${schema}".sluice_migrations ORDER BY version`);
    expect(rows.map((r) => r.version)).toEqual([1, 2]);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('opens through the URL, with the schema and pool size as query parameters', async () => {
    const sluice = await Sluice.open(`${PG_URL}?schema=${schema}&poolSize=3`, { logger: memoryLogger() });
    const { id } = await sluice.send('q', { hello: 'world' });
    const [m] = await sluice.receive('q');
    expect(m?.id).toBe(id);
    await sluice.close();
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".sluice_queues`);
    expect(rows[0].n).toBe(1);
  });

  it('refuses a schema written by a newer Sluice, and bad schema names', async () => {
    const store = await PostgresStore.open({ url: PG_URL, schema });
    await store.close();
    await admin.query(`INSERT INTO "${schema}".sluice_migrations (version) VALUES (999)`);
    await expect(PostgresStore.open({ url: PG_URL, schema })).rejects.toBeInstanceOf(SchemaTooNewError);
    await expect(PostgresStore.open({ url: PG_URL, schema: 'Bad-Name"; DROP' })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('an unreachable database fails with a clear StoreUnavailableError', async () => {
    const url = new URL(PG_URL);
    url.port = '1'; // nothing listens there
    const started = Date.now();
    const error = await PostgresStore.open({ url: url.toString(), schema, unavailableRetryMs: 300 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/cannot open the PostgreSQL store.*cannot be reached/);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('claims and acks find messages by primary key once the table has statistics', async () => {
    // Statistics taken while every message waits make the in-flight index look empty and the claim's
    // LIMIT look like a tenth of the table. Plans that trusted them scanned every leased message per
    // ack, or the whole table per claim: a drain ran at a third of its speed after ANALYZE.
    const sluice = await Sluice.open({ store: 'postgres', url: PG_URL, schema }, { logger: memoryLogger() });
    await sluice.sendMany(
      'q',
      Array.from({ length: 3_000 }, (_, i) => ({ payload: { i } })),
    );
    await admin.query(`ANALYZE "${schema}".sluice_messages`);
    await admin.query(
      `UPDATE "${schema}".sluice_messages SET state = 3, lease_token = 't' || id,
         lease_expires_at = now() + interval '1 minute' WHERE id % 3 = 0`,
    );
    // The store keeps one plan per statement and connection, made for any parameter values.
    const genericPlan = async (sql: string, types: string, values: string) => {
      await admin.query(`PREPARE probe(${types}) AS ${sql.replaceAll('{schema}', `"${schema}"`)}`);
      await admin.query('SET plan_cache_mode = force_generic_plan');
      const { rows } = await admin.query(`EXPLAIN (FORMAT JSON) EXECUTE probe(${values})`);
      await admin.query('DEALLOCATE probe');
      return JSON.stringify(rows[0]['QUERY PLAN']);
    };
    const ack = await genericPlan(
      `SELECT m.id FROM unnest($1::int8[], $2::text[]) AS a(id, token) CROSS JOIN LATERAL (${LOCK_LEASED}) AS m`,
      'int8[], text[]',
      `'{3,6,9}', '{t3,t6,t9}'`,
    );
    expect(ack).toContain('sluice_messages_pkey');
    expect(ack).not.toContain('sluice_messages_in_flight');
    const claim = await genericPlan(CLAIM_SQL, 'text, int, text, int8, boolean', `'q', 64, 'p', 30000, false`);
    expect(claim).not.toContain('Seq Scan');
    // The hot ack checks each token in a JSON object instead of joining the tokens: the plan's only
    // way to the messages is an index scan of the primary key, which takes (and locks) them in id
    // order, however few rows the statistics promise.
    const unlocked = await genericPlan(ACK_UNLOCKED_SQL, 'int8[], jsonb, int2', `'{3,6,9}', '{"3":"t3"}', 0`);
    expect(unlocked).toContain('sluice_messages_pkey');
    expect(unlocked).not.toMatch(/"Node Type":"(Seq Scan|Bitmap Heap Scan)"[^}]*"Relation Name":"sluice_messages"/);
    await sluice.close();
  });

  it('an ack that waits behind a re-claim of its message refuses it and leaves the new lease alone', async () => {
    // The hot ack takes no lock before its DELETE. Here the message is re-leased (a new token)
    // by a transaction that commits while the DELETE waits for its row: PostgreSQL must check the
    // lease again on the row as that transaction left it, and drop it.
    const sluice = await Sluice.open({ store: 'postgres', url: PG_URL, schema }, { logger: memoryLogger() });
    const { id } = await sluice.send('q', { n: 1 });
    const [m] = await sluice.receive('q');
    const holder = new pg.Client({ connectionString: PG_URL });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(
        `UPDATE "${schema}".sluice_messages SET lease_token = 'other', lease_expires_at = now() + interval '1 minute'
          WHERE id = $1`,
        [id],
      );
      const ack = sluice.store.messageFinishMany({
        items: [{ id, leaseToken: m?.leaseToken as string, outcome: { kind: 'ack' } }],
      });
      // Commit only once the ack is waiting for the row.
      for (let waited = 0; ; waited += 20) {
        const { rows } = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%sluice_messages%'`,
        );
        if (rows[0].n > 0) break;
        if (waited > 5_000) throw new Error('the ack never waited for the row lock');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await holder.query('COMMIT');
      expect(await ack).toEqual([{ ok: false, reason: 'lease_lost' }]);
    } finally {
      await holder.end();
    }
    const { rows } = await admin.query(`SELECT state, lease_token FROM "${schema}".sluice_messages WHERE id = $1`, [
      id,
    ]);
    expect(rows).toEqual([{ state: 3, lease_token: 'other' }]);
    expect((await sluice.queue('q').stats()).inFlight).toBe(1);
    await sluice.close();
  });
});

describe.runIf(STORE_KINDS.includes('postgres'))('PostgreSQL store: ids past the bigint range', () => {
  let store: TestStore;

  beforeEach(async () => {
    store = await createTestStore('postgres');
  });

  afterEach(async () => {
    await store.cleanup();
  });

  it('name no message, and never fail the other items of a batch', async () => {
    const s = await store.open();
    const huge = '9999999999999999999';
    const { id } = await s.send('q', 1);
    const [m] = await s.receive('q');
    expect(await s.message(huge)).toBeNull();
    const results = await s.store.messageFinishMany({
      items: [
        { id: huge, leaseToken: 'AAAAAAAAAAAAAAAA', outcome: { kind: 'ack' } },
        { id, leaseToken: m?.leaseToken as string, outcome: { kind: 'ack' } },
      ],
    });
    expect(results).toEqual([
      { ok: false, reason: 'lease_lost' },
      { ok: true, state: 'deleted' },
    ]);
    expect(await s.queue('q').redrive({ ids: [huge] })).toBe(0);
    expect(await s.queue('q').deadLetters({ afterId: huge })).toEqual([]);
  });
});
