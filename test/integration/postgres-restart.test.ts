/**
 * The database goes away in the middle of a run: a producer keeps sending and
 * two worker processes keep consuming. Nothing acknowledged may be lost, and
 * work must resume without restarting any process.
 *
 * The default fault terminates every backend this run opened (found by the
 * application_name in its connection URL), which is safe while other test
 * files use the same cluster. An immediate restart of the whole cluster
 * would break their connections too, so that variant runs only when asked:
 *   SLUICE_TEST_PG_RESTART=1 npx vitest run test/integration/postgres-restart.test.ts
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoreLocation } from '../../src/client/open-options.js';
import { Sluice } from '../../src/client/sluice.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { checkLedger, createLedger, readEffects, readLedger } from '../support/postgres-ledger.js';
import { startPostgresWorker, type WorkerProcess } from '../support/postgres-workers.js';
import { createTestStore, memoryLogger, PG_URL, STORE_KINDS, type TestStore, waitFor } from '../support/stores.js';

const run = promisify(execFile);

/** The local cluster's version (the only folder in /etc/postgresql), for pg_ctlcluster. */
function clusterVersion(): string {
  return fs.readdirSync('/etc/postgresql')[0] as string;
}

async function pgReady(): Promise<boolean> {
  try {
    await run('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']);
    return true;
  } catch {
    return false;
  }
}

/** Restarts the cluster in immediate mode (no shutdown checkpoint, crash recovery on start). */
async function restartCluster(): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', clusterVersion(), 'main', 'restart', '-m', 'immediate']);
  await waitFor(pgReady, { timeoutMs: 30_000, what: 'PostgreSQL to accept connections again' });
}

/** Leaves the cluster running whatever happened in a test. */
async function ensureClusterUp(): Promise<void> {
  if (await pgReady()) return;
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', clusterVersion(), 'main', 'start']).catch(() => undefined);
  await waitFor(pgReady, { timeoutMs: 30_000, what: 'PostgreSQL to start' });
}

describe.runIf(STORE_KINDS.includes('postgres'))('PostgreSQL: the database goes away mid-run', () => {
  let store: TestStore;
  let schema: string;
  let app: string;
  let location: StoreLocation;
  let admin: pg.Client;
  let producer: Sluice | null = null;
  let workers: WorkerProcess[] = [];

  beforeEach(async () => {
    store = await createTestStore('postgres');
    schema = (store.location as { schema: string }).schema;
    // Every connection of this run carries this name, so the fault can target exactly them.
    app = `sluice_fault_${randomBytes(4).toString('hex')}`;
    const url = new URL(PG_URL);
    url.searchParams.set('application_name', app);
    location = { store: 'postgres', url: url.toString(), schema };
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });

  afterEach(async () => {
    await ensureClusterUp();
    for (const w of workers) w.kill();
    await Promise.all(workers.map((w) => w.exited));
    workers = [];
    await producer?.close().catch(() => undefined);
    producer = null;
    await admin.end().catch(() => undefined);
    await store.cleanup();
  });

  /**
   * Sends 1,200 messages in bursts while two worker processes consume, starts
   * `fault` a third of the way through, then checks the ledger.
   */
  async function runWithFault(fault: () => Promise<void>): Promise<void> {
    producer = await Sluice.open(location, { logger: memoryLogger() });
    await producer.queue('jobs').configure({ maxAttempts: 50, backoff: { baseMs: 10, maxMs: 200 } });
    // Workers open their own stores through `location` only after the schema exists.
    await createLedger(admin, schema);
    workers = await Promise.all(
      [0, 1].map((i) =>
        startPostgresWorker({
          location,
          ledger: { url: PG_URL, schema },
          queue: 'jobs',
          concurrency: 8,
          // Short leases: an ack lost with its connection is redelivered soon.
          leaseMs: 2_000,
          failRate: 0,
          handlerMs: 1,
          seed: 7_000 + i,
          sweepIntervalMs: 200,
        }),
      ),
    );

    const sent = new Map<string, { key: string | null; seq: number | null }>();
    const unknown = new Set<number>();
    const errors: unknown[] = [];
    const bursts = 120;
    let faultAt = 0;
    let faultDone: Promise<void> = Promise.resolve();
    for (let b = 0; b < bursts; b++) {
      // The fault runs alongside the sends, so some of them meet it.
      if (b === bursts / 3) {
        faultAt = Date.now();
        faultDone = fault();
      }
      const sends = Array.from({ length: 10 }, (_, i) => b * 10 + i).map(async (seq) => {
        try {
          const r = await (producer as Sluice).send('jobs', { seq });
          sent.set(r.id, { key: null, seq });
        } catch (error) {
          // A send whose commit may or may not have happened is reported, never repeated.
          unknown.add(seq);
          errors.push(error);
        }
      });
      await Promise.all(sends);
      await new Promise((r) => setTimeout(r, 10));
    }
    await faultDone;
    expect(errors.every((e) => e instanceof StoreUnavailableError)).toBe(true);
    expect(sent.size).toBeGreaterThan(1_000);

    await waitFor(
      async () => {
        const effects = await readEffects(admin, schema);
        return [...sent.keys()].every((id) => effects.has(id));
      },
      { timeoutMs: 40_000, what: 'every acknowledged send to be processed' },
    );
    // Nothing is left in flight: a delivery whose ack was lost is redone once its lease runs out.
    await waitFor(
      async () => {
        const s = await (producer as Sluice).queue('jobs').stats();
        return s.ready + s.delayed + s.inFlight === 0;
      },
      { timeoutMs: 20_000, what: 'the queue to drain' },
    );

    const events = await readLedger(admin, schema);
    const verdict = checkLedger(sent, events, (e) => e.seq !== null && unknown.has(e.seq));
    expect(verdict.lost).toEqual([]);
    // Handled but not acknowledged to the producer: only sends with an unknown outcome.
    const unexpected = verdict.unexpected.filter((id) => {
      const seq = events.find((e) => e.id === id)?.seq;
      return seq === null || seq === undefined || !unknown.has(seq);
    });
    expect(unexpected).toEqual([]);
    // The same processes kept working after the fault: no restart was needed.
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT DISTINCT pid FROM "${schema}".test_events WHERE kind = 'end' AND written > to_timestamp($1::float8 / 1000)`,
      [faultAt + 500],
    );
    expect(new Set(rows.map((r) => r.pid))).toEqual(new Set(workers.map((w) => w.pid)));
  }

  it('terminated backends: producers and workers reconnect on their own and lose nothing', async () => {
    const terminated: number[] = [];
    await runWithFault(async () => {
      // Twice, a moment apart, so reconnected pools are cut again while they recover.
      for (let i = 0; i < 2; i++) {
        const { rows } = await admin.query<{ n: number }>(
          'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
          [app],
        );
        terminated.push(rows[0]?.n ?? 0);
        await new Promise((r) => setTimeout(r, 300));
      }
    });
    // Both rounds cut connections: the producer's, and each worker's pool and listener.
    expect(terminated[0]).toBeGreaterThanOrEqual(5);
    expect(terminated[1]).toBeGreaterThan(0);
  }, 60_000);

  it.runIf(process.env.SLUICE_TEST_PG_RESTART === '1')(
    'an immediate restart of PostgreSQL: work resumes without restarting any process',
    async () => {
      await runWithFault(async () => {
        await admin.end();
        await restartCluster();
        admin = new pg.Client({ connectionString: PG_URL });
        await admin.connect();
      });
    },
    60_000,
  );
});
