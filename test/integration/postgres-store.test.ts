/**
 * What is particular to the PostgreSQL store: opening (concurrent migrations,
 * schema names, a newer schema), clear errors when the database cannot be
 * reached, and ids outside the bigint range.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sluice } from '../../src/client/sluice.js';
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
