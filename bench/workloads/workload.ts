import type { QueueSystem, Target } from '../systems/queue-system.js';

/** The workloads; see bench/README.md for what each measures. */
export const WORKLOAD_IDS = ['W1', 'W2', 'W2k', 'W2f', 'W3', 'W4', 'MEM'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

/** Sizes and limits of one benchmark invocation (full or --quick). */
export interface Params {
  /** W1 and W2: messages per run. */
  messages: number;
  /** W1: a send mode stops after this long even if not all messages were sent. */
  sendCapMs: number;
  /** W2: a drain stops after this long even if messages remain. */
  drainCapMs: number;
  /** W1 bulk and fills: messages per bulk call. */
  bulkSize: number;
  /** W1: sends in flight in the concurrent mode. */
  inFlight: number;
  /** W2k: distinct ordering keys. */
  orderingKeys: number;
  /** W2f: subscriptions a topic fans out to. */
  fanout: number;
  /** W3: messages and their steady send rate per second. */
  latencyMessages: number;
  latencyRate: number;
  /** W3: worker concurrency (the worker idles between messages). */
  latencyConcurrency: number;
  /** W4: send rate per second, how long, worker concurrency and handler time. */
  spikeRate: number;
  spikeSeconds: number;
  spikeConcurrency: number;
  spikeHandlerMs: number;
  /** W4: how long to wait for the backlog after the last send. */
  spikeDrainCapMs: number;
  /** MEM: backlog sizes for Sluice; peers are measured at the largest only. */
  memoryLevels: number[];
  /** MEM: fresh worker processes sampled per backlog size. */
  memorySamples: number;
  /** MEM: how long filling a backlog may take before the figure is skipped. */
  memoryFillCapMs: number;
  /** MEM: how long each worker process works before its RSS is taken. */
  memoryWorkMs: number;
}

export const FULL_PARAMS: Params = {
  messages: 20_000,
  sendCapMs: 8_000,
  drainCapMs: 12_000,
  bulkSize: 1_000,
  inFlight: 64,
  orderingKeys: 1_000,
  fanout: 3,
  latencyMessages: 2_000,
  latencyRate: 200,
  latencyConcurrency: 8,
  spikeRate: 2_000,
  spikeSeconds: 10,
  spikeConcurrency: 200,
  spikeHandlerMs: 50,
  spikeDrainCapMs: 20_000,
  memoryLevels: [10_000, 100_000, 1_000_000],
  memorySamples: 3,
  memoryFillCapMs: 180_000,
  memoryWorkMs: 3_000,
};

export const QUICK_PARAMS: Params = {
  ...FULL_PARAMS,
  messages: 2_000,
  sendCapMs: 2_000,
  drainCapMs: 3_000,
  latencyMessages: 300,
  spikeSeconds: 1,
  spikeDrainCapMs: 3_000,
  memoryLevels: [1_000, 5_000],
  memorySamples: 1,
  memoryFillCapMs: 20_000,
  memoryWorkMs: 1_000,
};

/** What one run of one workload on one system measured. */
export interface RunResult {
  /** Figure id → value; ids are described in lib/figures.ts. */
  figures: Record<string, number>;
  /** Facts worth printing next to the figures (e.g. a run stopped at its time cap). */
  notes: string[];
}

export interface RunContext {
  system: QueueSystem;
  target: Target;
  params: Params;
  /** Which variant of the workload: a send mode, a concurrency. */
  mode: string;
}
