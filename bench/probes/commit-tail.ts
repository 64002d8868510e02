/**
 * The machine's own commit latency tail at W4's offered rate, without any
 * queue: a 200-byte append + fdatasync on the benchmark's data disk, and a
 * bare one-row INSERT into PostgreSQL from a pool of eight connections, each
 * started on a fixed schedule of 2,000 a second for 10 s. When these tails are
 * in the tens of milliseconds, so is every durable system's W4 send p99 on
 * that machine, whatever the queue does.
 *
 *   npx tsx bench/probes/commit-tail.ts [seconds]
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { benchDataDir } from '../lib/data-dir.js';
import { now, sleepUntil } from '../lib/timing.js';
import { POSTGRES_URL } from '../systems/queue-system.js';

const seconds = Number(process.argv[2] ?? 10);
const RATE = 2_000;

function summary(label: string, latencies: number[]): void {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (p: number) => (sorted[Math.floor(p * (sorted.length - 1))] as number).toFixed(2);
  const over10 = sorted.filter((ms) => ms > 10).length;
  console.log(
    `${label.padEnd(44)} n=${sorted.length} p50 ${at(0.5)} p99 ${at(0.99)} max ${at(1)} ms; ${over10} over 10 ms`,
  );
}

/** fdatasyncs one after another, each started no earlier than its slot (one at a time: a disk has one queue here). */
function diskTail(): number[] {
  fs.mkdirSync(benchDataDir(), { recursive: true });
  const file = path.join(benchDataDir(), `commit-tail-${process.pid}`);
  const fd = fs.openSync(file, 'w');
  const record = Buffer.alloc(200, 1);
  const latencies: number[] = [];
  try {
    const start = now();
    for (let i = 0; i < seconds * RATE; i++) {
      while (now() < start + (i * 1000) / RATE) {
        // Busy-wait: a timer cannot wake within the half-millisecond slots.
      }
      const t = now();
      fs.writeSync(fd, record);
      fs.fdatasyncSync(fd);
      latencies.push(now() - t);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return latencies;
}

async function postgresTail(): Promise<number[]> {
  const table = `commit_tail_${process.pid}`;
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 8 });
  const latencies: number[] = [];
  try {
    await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, body text)`);
    const body = 'x'.repeat(200);
    const inFlight: Promise<void>[] = [];
    const start = now();
    for (let i = 0; i < seconds * RATE; i++) {
      await sleepUntil(start + (i * 1000) / RATE);
      const t = now();
      inFlight.push(
        pool.query(`INSERT INTO ${table} (body) VALUES ($1)`, [body]).then(() => {
          latencies.push(now() - t);
        }),
      );
    }
    await Promise.all(inFlight);
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  }
  return latencies;
}

summary('disk: 200 B append + fdatasync, 2,000/s', diskTail());
summary('PostgreSQL: one-row INSERT, 2,000/s, pool 8', await postgresTail());
