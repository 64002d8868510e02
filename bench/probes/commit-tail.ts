/**
 * The machine's own commit latency tail at W4's offered rate, without any
 * queue: a 200-byte append + fdatasync on the benchmark's data disk, and a
 * bare one-row INSERT into PostgreSQL from a pool of eight connections, each
 * started on a fixed schedule of 2,000 a second. When these tails are in the
 * tens of milliseconds, so is every durable system's W4 send p99 on that
 * machine, whatever the queue does. Beside each Sluice W3 and W4 run a light
 * version (10 and 50 commits a second, one at a time) gives the figures
 * `w3.commitMax` and `w4.commitMax`.
 *
 *   npx tsx bench/probes/commit-tail.ts [seconds]
 */
import { diskCommitLatencies, postgresCommitLatencies } from '../lib/commit-tail.js';
import { benchDataDir } from '../lib/data-dir.js';
import { percentile } from '../lib/stats.js';
import { POSTGRES_URL } from '../systems/queue-system.js';

const seconds = Number(process.argv[2] ?? 10);
const RATE = 2_000;

function summary(label: string, latencies: number[]): void {
  const at = (p: number) => percentile(latencies, p).toFixed(2);
  const over10 = latencies.filter((ms) => ms > 10).length;
  console.log(
    `${label.padEnd(44)} n=${latencies.length} p50 ${at(0.5)} p99 ${at(0.99)} max ${Math.max(...latencies).toFixed(2)} ms; ${over10} over 10 ms`,
  );
}

summary('disk: 200 B append + fdatasync, 2,000/s', diskCommitLatencies(benchDataDir(), seconds, RATE));
summary('PostgreSQL: one-row INSERT, 2,000/s, pool 8', await postgresCommitLatencies(POSTGRES_URL, seconds, RATE));
