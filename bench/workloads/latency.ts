import { type CommitProbe, startStoreProbe } from '../lib/commit-tail.js';
import { Helper, hear, tell } from '../lib/processes.js';
import { latencySummary } from '../lib/stats.js';
import { now, sleep, sleepUntil } from '../lib/timing.js';
import type { Payload, QueueSystem, Target } from '../systems/queue-system.js';
import { makePayload } from './payload.js';
import type { RunContext, RunResult } from './workload.js';

const WARMUP = 20;
/** Commits per second of the bare-commit probe beside a Sluice run: a twentieth of the sends. */
const PROBE_RATE = 10;

/**
 * W3 latency: a worker in another process waits, idle; this process sends
 * `latencyMessages` one by one at a steady `latencyRate` per second (each send
 * starts on schedule, not after the previous one resolves). The worker records
 * handler-start time minus the send-call time carried in the payload.
 * Beside a Sluice run, a probe commits on the same store without any queue ten
 * times a second (see W4); its slowest commit is the figure `w3.commitMax`.
 */
export async function runLatency(ctx: RunContext): Promise<RunResult> {
  const { system, target, params } = ctx;
  const helper = new Helper({
    role: 'latency-worker',
    system: system.name,
    target,
    concurrency: params.latencyConcurrency,
    expected: params.latencyMessages,
  });
  const client = await system.connect(target);
  let probe: CommitProbe | null = null;
  try {
    await helper.next('ready');
    // Warm the sender's connection; the worker ignores these (negative index).
    for (let i = 0; i < WARMUP; i++) await client.sendOne(makePayload(-1));
    // Let the worker finish the warm-up and fall idle, waiting for work.
    await sleep(1_500);
    // Started before the schedule is fixed: its set-up (a connection, a table) must not make the first sends late.
    probe = await startStoreProbe(system, target, PROBE_RATE);
    const interval = 1000 / params.latencyRate;
    const start = now() + 10;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < params.latencyMessages; i++) {
      await sleepUntil(start + i * interval);
      sends.push(client.sendOne(makePayload(i)));
    }
    await Promise.all(sends);
    const probed = probe === null ? null : await probe.stop();
    const lateness = now() - (start + params.latencyMessages * interval);
    // Ask for whatever arrived if some messages never reach the handler.
    const timer = setTimeout(() => helper.send({ type: 'flush' }), 10_000);
    const samples = (await helper.next('latencies')).samples as number[];
    clearTimeout(timer);
    const s = latencySummary(samples);
    const notes: string[] = [];
    if (samples.length < params.latencyMessages) {
      notes.push(`W3: only ${samples.length} of ${params.latencyMessages} messages reached the handler within 10 s`);
    }
    if (lateness > 1_000) notes.push(`W3: the sender fell ${Math.round(lateness)} ms behind its schedule`);
    const figures: Record<string, number> = { 'w3.p50': s.p50, 'w3.p95': s.p95, 'w3.p99': s.p99, 'w3.max': s.max };
    if (probed !== null && probed.length > 0) figures['w3.commitMax'] = Math.max(...probed);
    return { figures, notes };
  } finally {
    await probe?.stop();
    await client.close();
    await helper.stop();
  }
}

/** Helper process: the idle worker of W3. */
export async function latencyWorker(spec: {
  system: QueueSystem;
  target: Target;
  concurrency: number;
  expected: number;
}): Promise<void> {
  const client = await spec.system.connect(spec.target);
  const samples: number[] = [];
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    tell({ type: 'latencies', samples });
  };
  const worker = await client.work({
    concurrency: spec.concurrency,
    handler: (payload: Payload) => {
      const started = now();
      if (payload.i < 0) return;
      samples.push(started - payload.t);
      if (samples.length >= spec.expected) report();
    },
  });
  tell({ type: 'ready' });
  void hear('flush').then(report);
  await hear('stop');
  await worker.stop();
  await client.close();
}
