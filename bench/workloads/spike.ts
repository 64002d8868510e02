import { type CommitProbe, startStoreProbe } from '../lib/commit-tail.js';
import { Helper, hear, tell } from '../lib/processes.js';
import { percentile } from '../lib/stats.js';
import { now, sleep } from '../lib/timing.js';
import type { Payload, QueueSystem, Target } from '../systems/queue-system.js';
import { makePayload } from './payload.js';
import type { RunContext, RunResult } from './workload.js';

const WARMUP = 20;
/** Commits per second of the bare-commit probe beside a Sluice spike: 2.5% of the spike's rate. */
const PROBE_RATE = 50;

/**
 * W4 launch spike (the seeds' worked example, scaled): this process sends
 * `spikeRate` messages per second for `spikeSeconds` as individual sends that
 * start on schedule (like request handlers, not waiting for each other), while
 * a worker in another process at concurrency `spikeConcurrency` runs a handler
 * that takes `spikeHandlerMs`. Figures: achieved send rate, p99 send latency
 * (from the send call, and from the time its slot fell due), and time from the
 * last send resolving to the last handler finishing. The
 * achieved rate counts sends that resolved, over the time to the last one.
 *
 * Beside a Sluice spike, a probe commits on the same store without any queue
 * (an fdatasync on the data disk for SQLite, a one-row INSERT for PostgreSQL)
 * 50 times a second: its slowest commit shows whether the store itself
 * stalled during the spike, which then sets the floor under its send p99.
 */
export async function runSpike(ctx: RunContext): Promise<RunResult> {
  const { system, target, params } = ctx;
  const helper = new Helper({
    role: 'spike-worker',
    system: system.name,
    target,
    concurrency: params.spikeConcurrency,
    handlerMs: params.spikeHandlerMs,
    capMs: params.spikeDrainCapMs,
  });
  const client = await system.connect(target);
  let probe: CommitProbe | null = null;
  try {
    await helper.next('ready');
    for (let i = 0; i < WARMUP; i++) await client.sendOne(makePayload(-1));
    await sleep(1_000);
    const total = params.spikeRate * params.spikeSeconds;
    const latencies: number[] = [];
    // The same sends timed from the moment their slot fell due: a send issued late, because the
    // sending process was busy (in its queue client's own work among other things), counts the delay.
    const fromSlot: number[] = [];
    const sends: Promise<void>[] = [];
    let failures = 0;
    let lastResolved = 0;
    // Like a server with bounded concurrency, requests beyond two seconds' worth
    // of outstanding sends are shed (counted, never sent); this also bounds the run.
    const maxOutstanding = params.spikeRate * 2;
    let outstanding = 0;
    let shed = 0;
    probe = await startStoreProbe(system, target, PROBE_RATE);
    const start = now();
    let slot = 0;
    while (slot < total) {
      const due = Math.min(total, Math.floor(((now() - start) * params.spikeRate) / 1000) + 1);
      while (slot < due) {
        slot += 1;
        if (outstanding >= maxOutstanding) {
          shed += 1;
          continue;
        }
        const t = now();
        const dueAt = start + ((slot - 1) * 1000) / params.spikeRate;
        outstanding += 1;
        sends.push(
          client.sendOne(makePayload(slot)).then(
            () => {
              outstanding -= 1;
              lastResolved = now();
              latencies.push(lastResolved - t);
              fromSlot.push(lastResolved - dueAt);
            },
            () => {
              outstanding -= 1;
              failures += 1;
            },
          ),
        );
      }
      await sleep(1);
    }
    await Promise.all(sends);
    const probed = probe === null ? null : await probe.stop();
    const sent = total - shed - failures;
    helper.send({ type: 'expect', total: sent });
    const done = await helper.next('spike-done');
    const completed = done.completed as number;
    const notes: string[] = [];
    if (failures > 0) notes.push(`W4: ${failures} sends failed`);
    if (shed > 0) notes.push(`W4: ${shed} of ${total} sends shed: ${maxOutstanding} were already outstanding`);
    const drainMs = completed >= sent ? (done.lastDoneAt as number) - lastResolved : Number.NaN;
    if (completed < sent) {
      notes.push(
        `W4: backlog not drained ${params.spikeDrainCapMs / 1000} s after the last send (${sent - completed} left)`,
      );
    }
    const figures: Record<string, number> = {
      'w4.rate': sent / ((lastResolved - start) / 1000),
      'w4.p99': percentile(latencies, 0.99),
      'w4.p99Slot': percentile(fromSlot, 0.99),
      'w4.drain': drainMs,
    };
    if (probed !== null && probed.length > 0) figures['w4.commitMax'] = Math.max(...probed);
    return { figures, notes };
  } finally {
    await probe?.stop();
    await client.close();
    await helper.stop();
  }
}

/** Helper process: the W4 worker with a slow handler. */
export async function spikeWorker(spec: {
  system: QueueSystem;
  target: Target;
  concurrency: number;
  handlerMs: number;
  capMs: number;
}): Promise<void> {
  const client = await spec.system.connect(spec.target);
  let completed = 0;
  let lastDoneAt = 0;
  const worker = await client.work({
    concurrency: spec.concurrency,
    handler: async (payload: Payload) => {
      if (payload.i < 0) return;
      await sleep(spec.handlerMs);
      completed += 1;
      lastDoneAt = now();
    },
  });
  tell({ type: 'ready' });
  const expect = await hear('expect');
  const total = expect.total as number;
  const deadline = now() + spec.capMs;
  while (completed < total && now() < deadline) await sleep(2);
  tell({ type: 'spike-done', completed, lastDoneAt });
  await hear('stop');
  await worker.stop();
  await client.close();
}
