import { Helper, hear, tell } from '../lib/processes.js';
import { settleGc, sleep } from '../lib/timing.js';
import type { QueueSystem, Target } from '../systems/queue-system.js';
import { makePayloads } from './payload.js';
import type { RunContext, RunResult } from './workload.js';

/** Bulk calls in flight while filling a backlog. */
const FILL_LANES = 4;
/** The worker is sampled while working slowly: this handler time at this concurrency (~80 messages/s). */
const SLOW_HANDLER_MS = 100;
const SLOW_CONCURRENCY = 8;

/**
 * MEM: resident memory of a worker process with a backlog waiting. The queue is
 * filled to each backlog size with the bulk API; then `memorySamples` fresh
 * worker processes each work slowly for `memoryWorkMs` and report their RSS
 * after full garbage collections. Figure: median RSS in MB per backlog size.
 * Sluice is measured at every size (to show whether it stays flat); peers at
 * the largest only, and skipped when filling takes longer than the cap.
 */
export async function runMemory(ctx: RunContext): Promise<RunResult> {
  const { system, target, params } = ctx;
  const levels = system.peer ? params.memoryLevels.slice(-1) : params.memoryLevels;
  const figures: Record<string, number> = {};
  const notes: string[] = [];
  const client = await system.connect(target);
  try {
    for (const level of levels) {
      const filled = await fillTo(system, target, level, params.memoryFillCapMs);
      if (filled.count < level) {
        notes.push(
          `MEM ${level}: skipped, filling reached ${filled.count} messages in ${Math.round(filled.ms / 1000)} s (cap ${params.memoryFillCapMs / 1000} s)`,
        );
        break;
      }
      notes.push(`MEM ${level}: backlog filled at ${Math.round((filled.added / filled.ms) * 1000)} messages/s`);
      const samples: number[] = [];
      for (let s = 0; s < params.memorySamples; s++) {
        const helper = new Helper({ role: 'memory-worker', system: system.name, target, workMs: params.memoryWorkMs });
        try {
          const m = await helper.next('memory');
          samples.push(m.rssMb as number);
        } finally {
          await helper.stop();
        }
      }
      samples.sort((a, b) => a - b);
      figures[`mem.${level}`] = samples[Math.floor(samples.length / 2)] as number;
    }
  } finally {
    await client.close();
  }
  return { figures, notes };
}

/** Tops the backlog up to `level` messages with the bulk API. */
async function fillTo(
  system: QueueSystem,
  target: Target,
  level: number,
  capMs: number,
): Promise<{ count: number; added: number; ms: number }> {
  const client = await system.connect(target);
  const started = Date.now();
  try {
    const have = await client.remaining();
    let next = have;
    const lane = async () => {
      while (next < level && Date.now() - started < capMs) {
        const n = Math.min(system.bulkLimit, level - next);
        const from = next;
        next += n;
        await client.sendBulk(makePayloads(from, n));
      }
    };
    await Promise.all(Array.from({ length: FILL_LANES }, lane));
    const count = await client.remaining();
    return { count, added: count - have, ms: Math.max(1, Date.now() - started) };
  } finally {
    await client.close();
  }
}

/** Helper process: a worker working slowly through the backlog; reports its RSS after GC. */
export async function memoryWorker(spec: { system: QueueSystem; target: Target; workMs: number }): Promise<void> {
  const client = await spec.system.connect(spec.target);
  const worker = await client.work({ concurrency: SLOW_CONCURRENCY, handler: () => sleep(SLOW_HANDLER_MS) });
  await sleep(spec.workMs);
  await settleGc();
  const rssMb = process.memoryUsage().rss / (1024 * 1024);
  tell({ type: 'memory', rssMb });
  await hear('stop');
  await worker.stop();
  await client.close();
}
