import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { POSTGRES_URL, type QueueSystem, type Target } from '../systems/queue-system.js';
import { benchDataDir } from './data-dir.js';
import { now, sleepUntil } from './timing.js';

/**
 * The machine's own commit latency, with no queue in the way: what a durable
 * send's latency tail cannot go below. W3 and W4 run a light probe beside
 * each Sluice run (`startStoreProbe`), so a tail that belongs to the machine
 * (a disk or a PostgreSQL that stalls now and then) shows as such in the same
 * run; `probes/commit-tail.ts` offers W4's whole rate without a queue.
 */

/**
 * 200-byte appends + fdatasync in a scratch file of `dir`, each started no
 * earlier than its slot of `rate` per second, one at a time (a file has one
 * sync queue), for `seconds`. Returns each one's latency in ms, counted from
 * its slot, so time spent waiting behind a stalled one counts too.
 */
export function diskCommitLatencies(dir: string, seconds: number, rate: number): number[] {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `commit-tail-${process.pid}`);
  const fd = fs.openSync(file, 'w');
  const record = Buffer.alloc(200, 1);
  const latencies: number[] = [];
  try {
    const start = now();
    for (let i = 0; i < seconds * rate; i++) {
      const slot = start + (i * 1000) / rate;
      while (now() < slot) {
        // Busy-wait: a timer cannot wake within sub-millisecond slots.
      }
      fs.writeSync(fd, record);
      fs.fdatasyncSync(fd);
      latencies.push(now() - slot);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return latencies;
}

/**
 * One-row INSERTs (autocommit, synchronous_commit as the server has it) from a
 * pool of eight connections, started on a schedule of `rate` per second for
 * `seconds`, into a table made for the purpose and dropped afterwards.
 * Returns each one's latency in ms from when it was issued.
 */
export async function postgresCommitLatencies(url: string, seconds: number, rate: number): Promise<number[]> {
  const table = `sluice_bench_commit_tail_${process.pid}`;
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  const latencies: number[] = [];
  try {
    await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, body text)`);
    const body = 'x'.repeat(200);
    const inFlight: Promise<void>[] = [];
    const start = now();
    for (let i = 0; i < seconds * rate; i++) {
      await sleepUntil(start + (i * 1000) / rate);
      const issued = now();
      inFlight.push(
        pool.query(`INSERT INTO ${table} (body) VALUES ($1)`, [body]).then(() => {
          latencies.push(now() - issued);
        }),
      );
    }
    await Promise.all(inFlight);
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await pool.end();
  }
  return latencies;
}

/** A probe running beside a workload; `stop` ends it (once, however often called) and returns its latencies (ms). */
export interface CommitProbe {
  stop(): Promise<number[]>;
}

/**
 * Commits one at a time on a schedule of `rate` per second until stopped: a
 * 200-byte write + fdatasync of a scratch file in `dir` (off the event loop,
 * so the workload beside it is not held up), or a one-row INSERT on its own
 * PostgreSQL connection. Each latency counts from the commit's start, not its
 * slot, so the event loop it shares with the workload does not count; one at
 * a time, a stall still shows in full in the commit it holds up. At a few
 * dozen a second it adds almost nothing to the load it measures.
 */
export async function startCommitProbe(
  kind: 'disk' | 'postgres',
  target: { dir: string; url: string; schema?: string },
  rate: number,
): Promise<CommitProbe> {
  const latencies: number[] = [];
  let commit: () => Promise<void>;
  let close: () => Promise<void>;
  if (kind === 'disk') {
    fs.mkdirSync(target.dir, { recursive: true });
    const file = path.join(target.dir, `commit-probe-${process.pid}`);
    const handle = await fs.promises.open(file, 'w');
    const record = Buffer.alloc(200, 1);
    // Rewrites the same block, as SQLite rewrites its WAL from the start after
    // each checkpoint: an fdatasync that grows the file also waits for the file
    // system's journal, which a WAL in its steady state does not.
    await handle.write(record, 0, record.length, 0);
    await handle.datasync();
    commit = async () => {
      await handle.write(record, 0, record.length, 0);
      await handle.datasync();
    };
    close = async () => {
      await handle.close();
      await fs.promises.rm(file, { force: true });
    };
  } else {
    const table = `${target.schema === undefined ? '' : `"${target.schema}".`}sluice_bench_commit_probe_${process.pid}`;
    const client = new pg.Client({ connectionString: target.url });
    await client.connect();
    await client.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, body text)`);
    const body = 'x'.repeat(200);
    commit = async () => {
      await client.query(`INSERT INTO ${table} (body) VALUES ($1)`, [body]);
    };
    close = async () => {
      await client.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
      await client.end();
    };
  }
  let running = true;
  const loop = (async () => {
    const start = now();
    for (let i = 0; running; i++) {
      const slot = start + (i * 1000) / rate;
      await sleepUntil(slot);
      if (!running) break;
      const issued = now();
      await commit();
      latencies.push(now() - issued);
    }
  })();
  // A failed commit ends the loop; `stop` reports it, and until then it is not an unhandled rejection.
  loop.catch(() => undefined);
  let stopped: Promise<number[]> | null = null;
  const stop = async () => {
    running = false;
    try {
      await loop;
    } finally {
      await close();
    }
    return latencies;
  };
  return {
    stop() {
      stopped ??= stop();
      return stopped;
    },
  };
}

/**
 * The probe for a Sluice system's store (the data disk for SQLite, the server
 * for PostgreSQL), or null for a peer: peers share those stores, but one
 * probe per store and workload is enough to read a tail, and it keeps the
 * peers' runs exactly as they were. Its file or table lives in the run's own
 * queue (folder or schema), so a run killed at its time limit leaves nothing
 * behind once its queue is destroyed.
 */
export async function startStoreProbe(system: QueueSystem, target: Target, rate: number): Promise<CommitProbe | null> {
  if (system.peer || system.store === 'redis') return null;
  const dir = typeof target.dir === 'string' ? target.dir : benchDataDir();
  const schema = typeof target.schema === 'string' ? target.schema : undefined;
  return startCommitProbe(system.store === 'sqlite' ? 'disk' : 'postgres', { dir, url: POSTGRES_URL, schema }, rate);
}
