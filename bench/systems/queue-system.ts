/**
 * The common, deliberately small interface every benchmarked queue implements.
 *
 * A run creates a fresh queue (`create`), which returns a JSON `Target` that
 * other processes use to `connect` to the same queue; the producer and the
 * worker of one run may live in different processes. `destroy` removes
 * everything the run created.
 */

/** The ~200-byte message body every workload sends. `t` is the send-call time (epoch ms, sub-ms precision). */
export interface Payload {
  i: number;
  t: number;
  pad: string;
}

/** Where a fresh queue lives; plain JSON so it can be handed to another process. */
export interface Target {
  queue: string;
  [key: string]: unknown;
}

export type Handler = (payload: Payload) => Promise<void> | void;

export interface WorkOptions {
  /** Handlers running at once in this process. */
  concurrency: number;
  handler: Handler;
}

export interface RunningWorker {
  /** Stops fetching and waits for running handlers. */
  stop(): Promise<void>;
}

/** One process's connection to a queue. */
export interface QueueClient {
  /** Sends one message; resolves when the system says it is stored. */
  sendOne(payload: Payload): Promise<void>;
  /** Sends many with the system's bulk API (at most `bulkLimit` at once). */
  sendBulk(payloads: Payload[]): Promise<void>;
  /** Starts consuming with the system's recommended settings for speed at this concurrency. */
  work(options: WorkOptions): Promise<RunningWorker>;
  /** Messages not yet completed (waiting, delayed or in flight). */
  remaining(): Promise<number>;
  close(): Promise<void>;
}

/** Which store a system runs on; ratios compare Sluice/PostgreSQL with PostgreSQL peers. */
export type StoreKind = 'sqlite' | 'postgres' | 'redis';

export interface QueueSystem {
  /** Short id used on the command line and in JSON: `sluice-sqlite`, `bullmq`, ... */
  readonly name: string;
  /** Human label for tables and charts. */
  readonly label: string;
  readonly store: StoreKind;
  /** True for the queues Sluice is compared with. */
  readonly peer: boolean;
  /** What a resolved send survives, stated next to every figure. */
  readonly durability: string;
  /** The settings used, and where they come from. */
  readonly settings: string;
  /** Largest batch `sendBulk` takes. */
  readonly bulkLimit: number;
  create(runId: string): Promise<Target>;
  connect(target: Target): Promise<QueueClient>;
  destroy(target: Target): Promise<void>;
}

/** Connection settings shared by every adapter; overridable by environment for other machines. */
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_HOST = process.env.BENCH_REDIS_HOST ?? '127.0.0.1';
export const REDIS_PORT = Number(process.env.BENCH_REDIS_PORT ?? 6379);

/** Turns a run id into a safe identifier part (schema, queue and key names). */
export function identifier(prefix: string, runId: string): string {
  return `${prefix}_${runId}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}
