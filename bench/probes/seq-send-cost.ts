/**
 * Where a send awaited one at a time spends its time, on one store: the
 * Sluice send, then the same kind of commit written by hand with the driver
 * alone, then the disk's bare fsync (SQLite) or a bare one-row INSERT
 * (PostgreSQL). Prints microseconds per send for each.
 *
 *   npx tsx bench/probes/seq-send-cost.ts sqlite [messages]
 *   npx tsx bench/probes/seq-send-cost.ts postgres [messages]
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Sluice } from '../../src/index.js';
import { benchDataDir } from '../lib/data-dir.js';
import { POSTGRES_URL as url } from '../systems/queue-system.js';

const kind = process.argv[2] ?? 'sqlite';
const n = Number(process.argv[3] ?? 10_000);
const PAD = 'x'.repeat(160);

async function timeLoop(label: string, fn: (i: number) => Promise<unknown> | unknown): Promise<void> {
  for (let i = 0; i < 300; i++) await fn(-1);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await fn(i);
  const cpu = process.cpuUsage(cpu0);
  const us = ((performance.now() - t0) * 1000) / n;
  const cpuUs = (cpu.user + cpu.system) / n;
  console.log(`${label.padEnd(40)} ${us.toFixed(1)} us/op  ${Math.round(1e6 / us)}/s  (CPU ${cpuUs.toFixed(1)} us/op)`);
}

if (kind === 'sqlite') {
  fs.mkdirSync(benchDataDir(), { recursive: true });
  const dir = fs.mkdtempSync(path.join(benchDataDir(), 'seq-probe-'));
  const sluice = await Sluice.open({ store: 'sqlite', path: path.join(dir, 'sluice.db') });
  await timeLoop('Sluice send', (i) => sluice.send('bench', { i, t: performance.now(), pad: PAD }));
  await sluice.close();
  // The same transaction by hand: one row into the messages table, the queue's counters, COMMIT, fdatasync of the WAL.
  const db = new Database(path.join(dir, 'sluice.db'));
  db.pragma('synchronous = NORMAL');
  const wal = fs.openSync(path.join(dir, 'sluice.db-wal'), 'r');
  const insert = db.prepare(
    `INSERT INTO sluice_messages (queue, state, priority, run_at, payload, enqueued_at) VALUES ('bench', 0, 0, ?, ?, ?)`,
  );
  const count = db.prepare('UPDATE sluice_queues SET depth = depth + 1, enqueued = enqueued + 1 WHERE name = ?');
  const tx = db.transaction((body: string) => {
    const t = Date.now();
    insert.run(t, body, t);
    count.run('bench');
  });
  let inTx = 0;
  await timeLoop('by hand: transaction + WAL fdatasync', (i) => {
    const t0 = performance.now();
    tx.immediate(JSON.stringify({ i, t: performance.now(), pad: PAD }));
    inTx += performance.now() - t0;
    fs.fdatasyncSync(wal);
  });
  console.log(`${'  of which the transaction'.padEnd(40)} ${((inTx * 1000) / (n + 300)).toFixed(1)} us/op`);
  fs.closeSync(wal);
  db.close();
  const file = path.join(dir, 'probe.bin');
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(200, 1);
  await timeLoop('write 200 B + fdatasync (append)', () => {
    fs.writeSync(fd, buf);
    fs.fdatasyncSync(fd);
  });
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
} else {
  const schema = `seq_probe_${process.pid}`;
  const sluice = await Sluice.open({ store: 'postgres', url, schema });
  await timeLoop('Sluice send', (i) => sluice.send('bench', { i, t: performance.now(), pad: PAD }));
  await sluice.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`create table ${schema}.bare (id bigserial primary key, body text)`);
  await timeLoop('bare one-row INSERT', () =>
    client.query({ name: 'bare', text: `insert into ${schema}.bare (body) values ($1)`, values: [PAD] }),
  );
  await client.query(`drop schema ${schema} cascade`);
  await client.end();
}
