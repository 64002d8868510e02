import type { DeadLetter } from '../core/message.js';
import type { DeadReason } from '../core/message-state.js';
import type { QueueConfig, QueueConfigInput } from '../core/queue-config.js';
import { DEFAULT_QUEUE_CONFIG, positiveInt } from '../core/queue-config.js';
import { ValidationError } from '../errors.js';
import { isMessageId } from '../store/message-id.js';
import type { DeadLetterFilter, QueueStatsRow, Store } from '../store/store.js';
import { deadLetter } from './decode.js';

/** A queue's depth, age and counters. */
export type QueueStats = QueueStatsRow;

/** Which dead letters to act on. Give `ids`, a `filter`, or `all: true`. */
export type DeadLetterSelection = { ids: string[] } | { filter: DeadLetterFilterInput } | { all: true };

/** A filter on dead letters; fields combine with AND. */
export interface DeadLetterFilterInput {
  reason?: DeadReason;
  /** Substring of the last error. */
  errorContains?: string;
  deadAfter?: Date | number;
  deadBefore?: Date | number;
}

const REASONS: readonly DeadReason[] = ['max_attempts', 'unrecoverable', 'lease_expired', 'rejected'];

/** Operations on one queue. Get one with `sluice.queue(name)`. */
export class QueueHandle {
  constructor(
    private readonly store: Store,
    /** The queue's name. */
    readonly name: string,
  ) {}

  /** Changes any subset of the queue's policy; returns the whole policy. */
  async configure(config: QueueConfigInput): Promise<QueueConfig> {
    return this.store.queueConfigure({ queue: this.name, config });
  }

  /** The queue's policy and whether it is paused. */
  async info(): Promise<{ name: string; config: QueueConfig; paused: boolean }> {
    const info = await this.store.queueGet({ queue: this.name });
    if (info !== null) return { name: info.name, config: info.config, paused: info.paused };
    return { name: this.name, config: { ...DEFAULT_QUEUE_CONFIG }, paused: false };
  }

  /** Depth by state, age of the oldest ready message, and lifetime counters. */
  stats(): Promise<QueueStats> {
    return this.store.queueStats({ queue: this.name });
  }

  /** Stops claiming (sends still land); in-flight messages finish normally. */
  pause(): Promise<void> {
    return this.store.queuePause({ queue: this.name, paused: true });
  }

  resume(): Promise<void> {
    return this.store.queuePause({ queue: this.name, paused: false });
  }

  /** Dead letters, oldest first, with their error history. Page with `afterId`. */
  async deadLetters<T = unknown>(options?: {
    limit?: number;
    afterId?: string;
    filter?: DeadLetterFilterInput;
  }): Promise<DeadLetter<T>[]> {
    const limit = options?.limit === undefined ? 50 : positiveInt(options.limit, 'limit');
    if (limit > 1_000) throw new ValidationError('limit must be at most 1,000');
    if (options?.afterId !== undefined && !isMessageId(options.afterId)) {
      throw new ValidationError('afterId must be a message id');
    }
    const rows = await this.store.deadLetterList({
      queue: this.name,
      limit,
      afterId: options?.afterId,
      filter: parseFilter(options?.filter),
    });
    return rows.map((r) => deadLetter<T>(r));
  }

  /** Puts dead letters back on the queue with attempts reset; returns how many. */
  async redrive(selection: DeadLetterSelection): Promise<number> {
    return this.store.deadLetterRedrive({ queue: this.name, filter: parseSelection(selection) });
  }

  /** Deletes dead letters for good; with no argument, all of them. Returns how many. */
  async purgeDead(selection: DeadLetterSelection = { all: true }): Promise<number> {
    return this.store.deadLetterPurge({ queue: this.name, filter: parseSelection(selection) });
  }
}

function parseSelection(selection: unknown): DeadLetterFilter {
  if (typeof selection !== 'object' || selection === null) {
    throw new ValidationError('say which dead letters: { ids: [...] }, { filter: {...} } or { all: true }');
  }
  const s = selection as Record<string, unknown>;
  if (Array.isArray(s.ids)) {
    if (!s.ids.every(isMessageId)) throw new ValidationError('ids must be message ids (strings of digits)');
    return { ids: s.ids as string[] };
  }
  if (s.filter !== undefined) return parseFilter(s.filter);
  if (s.all === true) return {};
  throw new ValidationError('say which dead letters: { ids: [...] }, { filter: {...} } or { all: true }');
}

function parseFilter(input: unknown): DeadLetterFilter {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null) throw new ValidationError('filter must be an object');
  const f = input as Record<string, unknown>;
  const out: DeadLetterFilter = {};
  for (const key of Object.keys(f)) {
    if (!['reason', 'errorContains', 'deadAfter', 'deadBefore'].includes(key)) {
      throw new ValidationError(
        `"${key}" is not a dead-letter filter; use reason, errorContains, deadAfter or deadBefore`,
      );
    }
  }
  if (f.reason !== undefined) {
    if (!REASONS.includes(f.reason as DeadReason))
      throw new ValidationError(`reason must be one of ${REASONS.join(', ')}`);
    out.reason = f.reason as DeadReason;
  }
  if (f.errorContains !== undefined) {
    if (typeof f.errorContains !== 'string' || f.errorContains.length === 0) {
      throw new ValidationError('errorContains must be a non-empty string');
    }
    out.errorContains = f.errorContains;
  }
  if (f.deadAfter !== undefined) out.deadAfter = time(f.deadAfter, 'deadAfter');
  if (f.deadBefore !== undefined) out.deadBefore = time(f.deadBefore, 'deadBefore');
  return out;
}

function time(value: unknown, name: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms))
    throw new ValidationError(`${name} must be a Date or epoch milliseconds`);
  return ms;
}
