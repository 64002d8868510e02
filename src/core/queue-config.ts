import { ValidationError } from '../errors.js';
import { type BackoffPolicy, DEFAULT_BACKOFF, parseBackoff } from './backoff.js';

/** What a send does when the queue is at its `maxDepth`. */
export type OnFull = 'reject' | 'wait';

/** A fixed-window rate limit: at most `max` claims every `perMs`, across all processes. */
export interface RateLimit {
  max: number;
  perMs: number;
}

/** A queue's policy. Every field has a default; `configure` changes any subset. */
export interface QueueConfig {
  /** Deliveries before a message is dead-lettered; an attempt counts when a lease is taken. Default 5. */
  maxAttempts: number;
  /** Retry delay policy. Default `{ baseMs: 1000, factor: 2, maxMs: 300000, jitter: 'full' }`. */
  backoff: BackoffPolicy;
  /** Most messages not yet done (ready, delayed, waiting, in flight); `null` (default) is unbounded. */
  maxDepth: number | null;
  /** At `maxDepth`: `'reject'` (default) throws `QueueFullError`; `'wait'` waits up to `fullWaitMs`. */
  onFull: OnFull;
  /** How long a send waits for room when `onFull` is `'wait'`. Default 5,000 ms. */
  fullWaitMs: number;
  /** How long completed messages are kept for inspection; 0 (default) deletes them on ack. */
  retentionMs: number;
  /** How long an idempotency key (and a `ctx.once` record) is remembered. Default 24 h. */
  dedupWindowMs: number;
  /** Claims allowed per window across every process; `null` (default) is unlimited. */
  rateLimit: RateLimit | null;
  /** Messages in flight at once across every process; `null` (default) is unlimited. */
  globalConcurrency: number | null;
}

/** The policy of a queue nobody configured. */
export const DEFAULT_QUEUE_CONFIG: Readonly<QueueConfig> = Object.freeze({
  maxAttempts: 5,
  backoff: DEFAULT_BACKOFF,
  maxDepth: null,
  onFull: 'reject',
  fullWaitMs: 5_000,
  retentionMs: 0,
  dedupWindowMs: 86_400_000,
  rateLimit: null,
  globalConcurrency: null,
});

const KEYS = Object.keys(DEFAULT_QUEUE_CONFIG) as (keyof QueueConfig)[];

/** Options accepted by `queue.configure`: any subset of {@link QueueConfig}, with a partial backoff. */
export type QueueConfigInput = Partial<Omit<QueueConfig, 'backoff'>> & { backoff?: Partial<BackoffPolicy> };

/** Validates `input` and returns `base` with it applied. Unknown keys are an error, not ignored. */
export function applyQueueConfig(base: QueueConfig, input: unknown): QueueConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError('queue configuration must be an object, for example { maxAttempts: 5 }');
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!(KEYS as string[]).includes(key)) {
      throw new ValidationError(`"${key}" is not a queue option; the options are ${KEYS.join(', ')}`);
    }
  }
  return {
    maxAttempts: raw.maxAttempts === undefined ? base.maxAttempts : positiveInt(raw.maxAttempts, 'maxAttempts'),
    backoff: parseBackoff(raw.backoff, 'backoff', base.backoff),
    maxDepth: raw.maxDepth === undefined ? base.maxDepth : nullable(raw.maxDepth, 'maxDepth', positiveInt),
    onFull: raw.onFull === undefined ? base.onFull : onFull(raw.onFull),
    fullWaitMs: raw.fullWaitMs === undefined ? base.fullWaitMs : nonNegativeInt(raw.fullWaitMs, 'fullWaitMs'),
    retentionMs: raw.retentionMs === undefined ? base.retentionMs : nonNegativeInt(raw.retentionMs, 'retentionMs'),
    dedupWindowMs:
      raw.dedupWindowMs === undefined ? base.dedupWindowMs : nonNegativeInt(raw.dedupWindowMs, 'dedupWindowMs'),
    rateLimit: raw.rateLimit === undefined ? base.rateLimit : nullable(raw.rateLimit, 'rateLimit', rateLimit),
    globalConcurrency:
      raw.globalConcurrency === undefined
        ? base.globalConcurrency
        : nullable(raw.globalConcurrency, 'globalConcurrency', positiveInt),
  };
}

/** Reads a stored configuration back, filling anything missing from the defaults. */
export function queueConfigFromJson(text: string | null | undefined): QueueConfig {
  if (!text) return { ...DEFAULT_QUEUE_CONFIG };
  return applyQueueConfig(DEFAULT_QUEUE_CONFIG, JSON.parse(text));
}

export function positiveInt(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError(`${path} must be a whole number, 1 or more (got ${show(value)})`);
  }
  return value;
}

export function nonNegativeInt(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError(`${path} must be a whole number, 0 or more (got ${show(value)})`);
  }
  return value;
}

function nullable<T>(value: unknown, path: string, parse: (v: unknown, p: string) => T): T | null {
  return value === null ? null : parse(value, path);
}

function onFull(value: unknown): OnFull {
  if (value !== 'reject' && value !== 'wait') throw new ValidationError('onFull must be "reject" or "wait"');
  return value;
}

function rateLimit(value: unknown, path: string): RateLimit {
  if (typeof value !== 'object' || value === null) {
    throw new ValidationError(`${path} must be { max, perMs }, for example { max: 100, perMs: 1000 }, or null`);
  }
  const raw = value as Record<string, unknown>;
  return { max: positiveInt(raw.max, `${path}.max`), perMs: positiveInt(raw.perMs, `${path}.perMs`) };
}

function show(value: unknown): string {
  return typeof value === 'number' || typeof value === 'string' ? JSON.stringify(value) : typeof value;
}
