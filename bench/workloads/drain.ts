import { Helper, hear, tell } from '../lib/processes.js';
import { now, sleep } from '../lib/timing.js';
import type { QueueSystem, Target } from '../systems/queue-system.js';
import { openSluice } from '../systems/sluice-client.js';
import { makePayload, makePayloads } from './payload.js';
import type { RunContext, RunResult } from './workload.js';

/** How a drain's queue is filled: plain messages, messages with ordering keys, or published to a fanned-out topic. */
export type DrainVariant = 'plain' | 'keys' | 'fanout';

const TOPIC = 'bench_topic';

/**
 * W2 / W2k / W2f drain: fill the queue first, then one worker process (a fresh
 * process that does nothing else) consumes everything with a no-op handler.
 * The clock runs from the worker's start until the store reports no message
 * left (every completion committed), or the time cap. Figure: messages/s.
 */
export async function runDrain(ctx: RunContext, variant: DrainVariant): Promise<RunResult> {
  const { system, target, params, mode } = ctx;
  const concurrency = Number(mode.slice(1));
  const queues = await fill(system, target, variant, ctx);
  const expected = variant === 'fanout' ? Math.ceil(params.messages / params.fanout) * params.fanout : params.messages;
  const helper = new Helper({
    role: 'drain-worker',
    system: system.name,
    target,
    concurrency,
    expected,
    capMs: params.drainCapMs,
    variant,
    queues,
  });
  try {
    const done = await helper.next('drained');
    const handled = done.handled as number;
    const seconds = (done.elapsedMs as number) / 1000;
    const id = variant === 'plain' ? `w2.${mode}` : variant === 'keys' ? `w2k.${mode}` : `w2f.${mode}`;
    const notes: string[] = [];
    if (handled < expected || done.remaining !== 0) {
      notes.push(
        `${id}: stopped at the ${params.drainCapMs / 1000} s cap with ${handled} of ${expected} handled (${String(done.remaining)} left)`,
      );
    }
    return { figures: { [id]: handled / seconds }, notes };
  } finally {
    await helper.stop();
  }
}

/** Fills the queue(s); returns the queues the worker must drain. */
async function fill(system: QueueSystem, target: Target, variant: DrainVariant, ctx: RunContext): Promise<string[]> {
  const { messages, bulkSize, orderingKeys, fanout, inFlight } = ctx.params;
  if (variant === 'plain') {
    const client = await system.connect(target);
    try {
      for (let sent = 0; sent < messages; sent += bulkSize) {
        await client.sendBulk(makePayloads(sent, Math.min(bulkSize, messages - sent)));
      }
    } finally {
      await client.close();
    }
    return [target.queue];
  }
  const sluice = await openSluice(target);
  try {
    if (variant === 'keys') {
      for (let sent = 0; sent < messages; sent += bulkSize) {
        const n = Math.min(bulkSize, messages - sent);
        await sluice.sendMany(
          target.queue,
          makePayloads(sent, n).map((payload) => ({
            payload,
            options: { orderingKey: `key-${payload.i % orderingKeys}` },
          })),
        );
      }
      return [target.queue];
    }
    const queues = Array.from({ length: fanout }, (_, j) => `${target.queue}_sub${j}`);
    for (const q of queues) await sluice.subscribe(TOPIC, q);
    const events = Math.ceil(messages / fanout);
    let issued = 0;
    const lane = async () => {
      while (issued < events) await sluice.publish(TOPIC, makePayload(issued++));
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    return queues;
  } finally {
    await sluice.close();
  }
}

/** Helper process: the single worker process of a drain. */
export async function drainWorker(spec: {
  system: QueueSystem;
  target: Target;
  concurrency: number;
  expected: number;
  capMs: number;
  variant: DrainVariant;
  queues: string[];
}): Promise<void> {
  const { system, target, concurrency, expected, capMs, variant, queues } = spec;
  let handled = 0;
  const handler = () => {
    handled += 1;
  };
  let remaining: () => Promise<number>;
  let stop: () => Promise<void>;
  let started: number;
  if (variant === 'fanout') {
    const sluice = await openSluice(target);
    started = now();
    const workers = queues.map((q) => sluice.work(q, handler, { concurrency }));
    remaining = async () => {
      let left = 0;
      for (const q of queues) {
        const s = await sluice.queue(q).stats();
        left += s.ready + s.delayed + s.waiting + s.inFlight;
      }
      return left;
    };
    stop = async () => {
      await Promise.all(workers.map((w) => w.close()));
      await sluice.close();
    };
  } else {
    const client = await system.connect(target);
    started = now();
    const worker = await client.work({ concurrency, handler });
    remaining = () => client.remaining();
    stop = async () => {
      await worker.stop();
      await client.close();
    };
  }
  const deadline = started + capMs;
  while (handled < expected && now() < deadline) await sleep(2);
  let left = await remaining();
  while (left > 0 && now() < deadline) {
    await sleep(10);
    left = await remaining();
  }
  const elapsedMs = now() - started;
  tell({ type: 'drained', handled, remaining: left, elapsedMs });
  await hear('stop');
  await stop();
}
