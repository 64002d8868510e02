import { benchDataDir } from '../lib/data-dir.js';
import { fsyncRate } from '../lib/fsync-probe.js';
import { now } from '../lib/timing.js';
import type { QueueClient } from '../systems/queue-system.js';
import { makePayload, makePayloads } from './payload.js';
import type { RunContext, RunResult } from './workload.js';

/**
 * Unmeasured sends first, so connections, prepared statements and the JIT are
 * warm for every system alike: this many one at a time, then, for the mode
 * about to be measured, its own path too (one-at-a-time sends alone left the
 * concurrent and bulk code of a fresh process cold: Sluice/SQLite's first
 * 20,000 with 64 in flight ran at 71,000-76,000/s in a fresh process, at
 * 81,000-120,000/s on a fresh database in a process that had already run them).
 */
const WARMUP = 200;
/** Warm-up for c64: this many sends with `inFlight` outstanding. */
const WARMUP_CONCURRENT = 2_000;
/** Warm-up for bulk: this many bulk calls of `bulkSize`. */
const WARMUP_BULKS = 2;
/** The disk probe run just before and just after a SQLite store's sequential sends, each this long. */
const DISK_PROBE_MS = 1_000;

/**
 * W1 send: `messages` sends in one of three modes, stopping early at the time
 * cap, after an unmeasured warm-up in the same mode. Figure: messages stored
 * per second.
 * - seq:  each send awaited before the next (one request at a time);
 * - c64:  `inFlight` sends outstanding at all times;
 * - bulk: the system's bulk call with `bulkSize` messages, one call at a time.
 *
 * For a store on the local disk, seq is judged against the disk's fsync rate,
 * which drifts between minutes; it is probed right before and right after the
 * sends, and the run also reports its sends as a share of the two probes' mean.
 */
export async function runSend(ctx: RunContext): Promise<RunResult> {
  const { system, target, params, mode } = ctx;
  const client = await system.connect(target);
  try {
    for (let i = 0; i < WARMUP; i++) await client.sendOne(makePayload(-1));
    const warmupDeadline = now() + params.sendCapMs;
    if (mode === 'c64') await concurrent(client, WARMUP_CONCURRENT, params.inFlight, warmupDeadline);
    if (mode === 'bulk') await bulk(client, WARMUP_BULKS * params.bulkSize, params.bulkSize, warmupDeadline);
    const probeDisk = mode === 'seq' && system.store === 'sqlite';
    const diskBefore = probeDisk ? fsyncRate(benchDataDir(), DISK_PROBE_MS) : 0;
    const deadline = now() + params.sendCapMs;
    const started = now();
    let sent: number;
    if (mode === 'seq') sent = await sequential(client, params.messages, deadline);
    else if (mode === 'c64') sent = await concurrent(client, params.messages, params.inFlight, deadline);
    else if (mode === 'bulk') sent = await bulk(client, params.messages, params.bulkSize, deadline);
    else throw new Error(`unknown W1 mode ${mode}`);
    const seconds = (now() - started) / 1000;
    const notes =
      sent < params.messages
        ? [`W1 ${mode}: stopped at the ${params.sendCapMs / 1000} s cap after ${sent} messages`]
        : [];
    const rate = sent / seconds;
    if (!probeDisk) return { figures: { [`w1.${mode}`]: rate }, notes };
    const disk = (diskBefore + fsyncRate(benchDataDir(), DISK_PROBE_MS)) / 2;
    return { figures: { 'w1.seq': rate, 'w1.seqDisk': disk, 'w1.seqShare': (100 * rate) / disk }, notes };
  } finally {
    await client.close();
  }
}

async function sequential(client: QueueClient, total: number, deadline: number): Promise<number> {
  let sent = 0;
  while (sent < total && now() < deadline) {
    await client.sendOne(makePayload(sent));
    sent += 1;
  }
  return sent;
}

async function concurrent(client: QueueClient, total: number, inFlight: number, deadline: number): Promise<number> {
  let issued = 0;
  let sent = 0;
  const lane = async () => {
    while (issued < total && now() < deadline) {
      const i = issued++;
      await client.sendOne(makePayload(i));
      sent += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return sent;
}

async function bulk(client: QueueClient, total: number, size: number, deadline: number): Promise<number> {
  let sent = 0;
  while (sent < total && now() < deadline) {
    const n = Math.min(size, total - sent);
    await client.sendBulk(makePayloads(sent, n));
    sent += n;
  }
  return sent;
}
