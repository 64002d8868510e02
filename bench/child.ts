/**
 * Entry point of every benchmark child process (see lib/processes.ts). The
 * first argument is a JSON spec whose `role` says what to do:
 *   probe          create a queue, send one message, clean up (is the system usable?)
 *   run            create a fresh queue, run one workload once, clean up, report
 *   destroy        clean up a queue left by a run that timed out
 *   *-worker       the worker side of a workload, started by a run as a helper
 */
import { tell } from './lib/processes.js';
import type { QueueSystem, Target } from './systems/queue-system.js';
import { isSystemName, loadSystem } from './systems/system-registry.js';
import { type DrainVariant, drainWorker, runDrain } from './workloads/drain.js';
import { latencyWorker, runLatency } from './workloads/latency.js';
import { memoryWorker, runMemory } from './workloads/memory.js';
import { makePayload } from './workloads/payload.js';
import { runSend } from './workloads/send.js';
import { runSpike, spikeWorker } from './workloads/spike.js';
import type { Params, RunContext, RunResult, WorkloadId } from './workloads/workload.js';

interface Spec {
  role: string;
  system: string;
  target?: Target;
  workload?: WorkloadId;
  mode?: string;
  runId?: string;
  params?: Params;
  [key: string]: unknown;
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 500);
  return String(error).slice(0, 500);
}

function fail(error: unknown): never {
  tell({ type: 'error', error: describe(error) });
  // Let the IPC message leave before exiting.
  setTimeout(() => process.exit(1), 100);
  throw error;
}

process.on('unhandledRejection', (error) => fail(error));
process.on('disconnect', () => process.exit(0));

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
  if (!isSystemName(spec.system)) throw new Error(`unknown system ${spec.system}`);
  const system = await loadSystem(spec.system);
  switch (spec.role) {
    case 'probe':
      return probe(system, spec.runId ?? 'probe');
    case 'run':
      return run(system, spec);
    case 'destroy':
      await system.destroy(spec.target as Target);
      tell({ type: 'result', result: {} });
      return;
    case 'drain-worker':
      return drainWorker({
        system,
        target: spec.target as Target,
        concurrency: spec.concurrency as number,
        expected: spec.expected as number,
        capMs: spec.capMs as number,
        variant: spec.variant as DrainVariant,
        queues: spec.queues as string[],
      });
    case 'latency-worker':
      return latencyWorker({
        system,
        target: spec.target as Target,
        concurrency: spec.concurrency as number,
        expected: spec.expected as number,
      });
    case 'spike-worker':
      return spikeWorker({
        system,
        target: spec.target as Target,
        concurrency: spec.concurrency as number,
        handlerMs: spec.handlerMs as number,
        capMs: spec.capMs as number,
      });
    case 'memory-worker':
      return memoryWorker({ system, target: spec.target as Target, workMs: spec.workMs as number });
    default:
      throw new Error(`unknown role ${spec.role}`);
  }
}

async function probe(system: QueueSystem, runId: string): Promise<void> {
  const target = await system.create(runId);
  tell({ type: 'target', target });
  try {
    const client = await system.connect(target);
    await client.sendOne(makePayload(0));
    const remaining = await client.remaining();
    await client.close();
    if (remaining !== 1) throw new Error(`probe: expected 1 message waiting, found ${remaining}`);
  } finally {
    await system.destroy(target);
  }
  tell({ type: 'result', result: { ok: true } });
}

async function run(system: QueueSystem, spec: Spec): Promise<void> {
  const target = await system.create(spec.runId as string);
  tell({ type: 'target', target });
  let result: RunResult;
  try {
    const ctx: RunContext = { system, target, params: spec.params as Params, mode: spec.mode ?? '' };
    result = await runWorkload(spec.workload as WorkloadId, ctx);
  } finally {
    await system.destroy(target);
  }
  tell({ type: 'result', result: result as unknown as Record<string, unknown> });
}

function runWorkload(workload: WorkloadId, ctx: RunContext): Promise<RunResult> {
  switch (workload) {
    case 'W1':
      return runSend(ctx);
    case 'W2':
      return runDrain(ctx, 'plain');
    case 'W2k':
      return runDrain(ctx, 'keys');
    case 'W2f':
      return runDrain(ctx, 'fanout');
    case 'W3':
      return runLatency(ctx);
    case 'W4':
      return runSpike(ctx);
    case 'MEM':
      return runMemory(ctx);
  }
}

main().then(
  () => {
    // Helpers and runs end here; open handles of peer libraries must not keep the process alive.
    setTimeout(() => process.exit(0), 100);
  },
  (error) => fail(error),
);
