/**
 * A worker process for the PostgreSQL multi-process tests. Started as
 *   node --import tsx test/support/postgres-child.ts '<json command>'
 * it consumes a queue and records every step in ledger tables of the test's
 * schema (see postgres-ledger.ts), through its own connection pool: `start`
 * when a handler begins, the effect and `end` (or `fail` for an injected
 * failure) before it resolves, and `ack` or `lost` when the worker reports
 * how the delivery was settled. It prints "ready" once consuming and exits
 * after closing cleanly on SIGTERM.
 */
import pg from 'pg';
import type { StoreLocation } from '../../src/client/open-options.js';
import { Sluice } from '../../src/client/sluice.js';
import { type LedgerKind, ledgerWriter } from './postgres-ledger.js';
import { mulberry32 } from './random.js';

interface Command {
  location: StoreLocation;
  /** Where the ledger tables are (the test's connection URL and schema). */
  ledger: { url: string; schema: string };
  queue: string;
  concurrency: number;
  leaseMs: number;
  /** Probability that a handler throws after writing its `start` line (and no effect). */
  failRate: number;
  handlerMs: number;
  seed: number;
  sweepIntervalMs: number;
}

const command = JSON.parse(process.argv[2] as string) as Command;
const out = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const random = mulberry32(command.seed);
const pool = new pg.Pool({ connectionString: command.ledger.url, max: 4 });
pool.on('error', () => undefined);
const write = ledgerWriter(pool, command.ledger.schema);
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const sluice = await Sluice.open(command.location, { logger: silent, sweepIntervalMs: command.sweepIntervalMs });

type Msg = { id: string; attempt: number; orderingKey: string | null; payload: { seq?: number } };
const line = (kind: LedgerKind, m: Msg) =>
  write({ kind, id: m.id, attempt: m.attempt, key: m.orderingKey, seq: m.payload.seq ?? null, pid: process.pid });

const worker = sluice.work<{ seq?: number }>(
  command.queue,
  async (m) => {
    await line('start', m);
    if (command.handlerMs > 0) await new Promise((r) => setTimeout(r, command.handlerMs * random() * 2));
    if (random() < command.failRate) {
      await line('fail', m);
      throw new Error('injected failure');
    }
    await pool.query(
      `INSERT INTO "${command.ledger.schema}".test_effects (id, attempt, pid) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
      [m.id, m.attempt, process.pid],
    );
    await line('end', m);
  },
  { concurrency: command.concurrency, leaseMs: command.leaseMs },
);
// Outcome lines are best effort: while the database is away they may be lost with it.
worker.on('completed', (m: Msg) => void line('ack', m).catch(() => undefined));
worker.on('failed', (m: Msg, _error: unknown, result: { ok: boolean; reason?: string }) => {
  if (!result.ok && result.reason === 'lease_lost') void line('lost', m).catch(() => undefined);
});
worker.on('error', () => undefined);
process.on('SIGTERM', () => {
  void worker.close().then(async () => {
    await sluice.close();
    await pool.end();
    process.exit(0);
  });
});
out({ event: 'ready', pid: process.pid });
