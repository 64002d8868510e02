/**
 * Drains a PostgreSQL queue in one process, on a table without statistics and
 * right after ANALYZE, to check that Sluice's plans do not depend on them:
 * `npx tsx bench/probes/drain-after-analyze.ts [rounds]`. Prints msg/s per
 * round for each case. Uses BENCH_POSTGRES_URL like the benchmark; each case
 * gets a fresh schema, dropped afterwards.
 */
import pg from 'pg';
import { Sluice } from '../../src/index.js';
import { POSTGRES_URL } from '../systems/queue-system.js';
import { makePayloads } from '../workloads/payload.js';

const MESSAGES = 20_000;
const BULK = 1_000;
const CONCURRENCY = 32;

async function drainOnce(admin: pg.Client, schema: string, analyze: boolean): Promise<number> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const sluice = await Sluice.open({ store: 'postgres', url: POSTGRES_URL, schema });
  try {
    for (let sent = 0; sent < MESSAGES; sent += BULK) {
      await sluice.sendMany(
        'bench',
        makePayloads(sent, BULK).map((payload) => ({ payload })),
      );
    }
    if (analyze) await admin.query(`ANALYZE "${schema}".sluice_messages`);
    let handled = 0;
    let finish = () => {};
    const drained = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const started = performance.now();
    const worker = sluice.work(
      'bench',
      () => {
        handled += 1;
        if (handled === MESSAGES) finish();
      },
      { concurrency: CONCURRENCY },
    );
    await drained;
    const rate = MESSAGES / ((performance.now() - started) / 1000);
    await worker.close();
    return Math.round(rate);
  } finally {
    await sluice.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

const rounds = Number(process.argv[2] ?? 3);
const admin = new pg.Client({ connectionString: POSTGRES_URL });
await admin.connect();
const rates: Record<'without statistics' | 'after ANALYZE', number[]> = {
  'without statistics': [],
  'after ANALYZE': [],
};
try {
  for (let round = 0; round < rounds; round++) {
    rates['without statistics'].push(await drainOnce(admin, 'sluice_probe_plain', false));
    rates['after ANALYZE'].push(await drainOnce(admin, 'sluice_probe_analyzed', true));
  }
} finally {
  await admin.end();
}
for (const [name, list] of Object.entries(rates)) console.log(`${name}: ${list.join(', ')} msg/s`);
