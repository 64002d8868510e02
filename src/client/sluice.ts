import type { Clock } from '../core/clock.js';
import type { HeaderFilter } from '../core/header-filter.js';
import { parseHeaderFilter } from '../core/header-filter.js';
import type { LeasedMessage, MessageInfo } from '../core/message.js';
import { assertQueueName } from '../core/names.js';
import { positiveInt } from '../core/queue-config.js';
import { ClosedError, LeaseLostError, QueueFullError, ValidationError } from '../errors.js';
import { Maintenance } from '../maintenance/maintenance.js';
import type { Logger } from '../observe/logger.js';
import { isMessageId } from '../store/message-id.js';
import type {
  FinishItem,
  FinishResult,
  InsertedMessage,
  InsertUnit,
  InsertUnitResult,
  Store,
  Subscription,
} from '../store/store.js';
import { type Handler, Worker, type WorkerOptions } from '../worker/worker.js';
import { type BatchCallback, BatchQueue } from './batch-queue.js';
import { leasedMessage, messageInfo } from './decode.js';
import {
  openStore,
  type ResolvedOptions,
  resolveOptions,
  type SluiceOptions,
  type StoreLocation,
} from './open-options.js';
import { QueueHandle } from './queue-handle.js';
import { buildMessage, type SendOptions } from './send-options.js';
import { WakeSignal } from './wake-signal.js';

/** What a send returns. */
export interface SendResult {
  id: string;
  /** True when the idempotency key was already used: nothing new was stored and `id` is the first message's. */
  duplicate: boolean;
}

/** One item of `sendMany`. */
export interface SendManyItem {
  payload: unknown;
  options?: SendOptions;
}

/** Options of the low-level `receive`. */
export interface ReceiveOptions {
  /** Most messages to return. Default 1, at most 1,000. */
  max?: number;
  /** Lease length. Default 30,000 ms. */
  leaseMs?: number;
  /** Long poll: wait up to this long for a message when none is ready. Default 0. */
  waitMs?: number;
}

/** Options of the low-level `nack`. */
export interface NackOptions {
  /** Retry after this delay instead of the backoff policy's. */
  delayMs?: number;
  /** What went wrong; kept in the message's error history. */
  error?: string;
}

const MAX_BATCH_MESSAGES = 1_000;
const DEFAULT_LEASE_MS = 30_000;

/**
 * A connection to a Sluice store: produce, consume and operate.
 *
 * @example
 * const sluice = await Sluice.open('sqlite:./data/sluice.db');
 * await sluice.send('email', { to: 'ann@example.com' });
 * sluice.work('email', async (msg) => sendEmail(msg.payload));
 */
export class Sluice {
  /** The store underneath; for tools and tests. */
  readonly store: Store;
  readonly logger: Logger;
  private readonly options: ResolvedOptions;
  private readonly inserts: BatchQueue<InsertUnit, InsertUnitResult>;
  private readonly finishes: BatchQueue<FinishItem, FinishResult>;
  private readonly workers = new Set<Worker<unknown>>();
  private maintenance: Maintenance | null = null;
  private closed = false;

  private constructor(store: Store, options: ResolvedOptions) {
    this.store = store;
    this.options = options;
    this.logger = options.logger;
    // Up to four batches in flight: on PostgreSQL each on its own connection;
    // on SQLite a batch commits at once and then waits for the group fsync,
    // during which the next batch can commit.
    const concurrency = 4;
    this.inserts = new BatchQueue((units) => store.messageInsertMany({ units }), {
      concurrency,
      maxWeight: MAX_BATCH_MESSAGES,
    });
    this.finishes = new BatchQueue((items) => store.messageFinishMany({ items }), {
      concurrency,
      maxWeight: MAX_BATCH_MESSAGES,
      schedule: 'macrotask',
    });
  }

  /**
   * Opens a store: `'sqlite:./data/sluice.db'` (the default kind, no set-up),
   * `'postgres://user@host/db'`, or an options object. Creates and migrates
   * the schema when needed.
   */
  static async open(location: StoreLocation, options?: SluiceOptions): Promise<Sluice> {
    const resolved = resolveOptions(options);
    const store = await openStore(location, resolved.clock);
    return new Sluice(store, resolved);
  }

  /**
   * Sends one message. Resolves once it is durably stored (committed); sends
   * made at the same moment share one commit.
   */
  async send(queue: string, payload: unknown, options?: SendOptions): Promise<SendResult> {
    this.assertOpen();
    const message = buildMessage(queue, payload, options, this.options.payloadLimitBytes);
    const unit: InsertUnit = { kind: 'send', messages: [message] };
    const result = await this.insert(unit, options?.tx, 1);
    const first = result[0] as InsertedMessage;
    return { id: first.id, duplicate: first.duplicate };
  }

  /** Sends several messages to one queue in one transaction: all are stored or none. */
  async sendMany(queue: string, items: SendManyItem[], options?: { tx?: unknown }): Promise<SendResult[]> {
    this.assertOpen();
    assertQueueName(queue);
    if (!Array.isArray(items)) throw new ValidationError('sendMany takes an array of { payload, options } items');
    if (items.length === 0) return [];
    if (items.length > 10_000)
      throw new ValidationError('sendMany takes at most 10,000 items per call; split larger batches');
    const messages = items.map((item, i) => {
      if (typeof item !== 'object' || item === null || !('payload' in item)) {
        throw new ValidationError(`sendMany item ${i} must be an object with a payload`);
      }
      if (item.options?.tx !== undefined) throw new ValidationError('pass tx to sendMany itself, not to its items');
      return buildMessage(queue, item.payload, item.options, this.options.payloadLimitBytes);
    });
    const result = await this.insert({ kind: 'send', messages }, options?.tx, messages.length);
    return result.map((m) => ({ id: m.id, duplicate: m.duplicate }));
  }

  /**
   * Publishes an event: one copy goes to every queue subscribed to the topic
   * whose filter matches the headers, all in one transaction. Returns the copies.
   */
  async publish(
    topic: string,
    payload: unknown,
    options?: SendOptions,
  ): Promise<{ queue: string; id: string; duplicate: boolean }[]> {
    this.assertOpen();
    assertQueueName(topic, 'topic');
    const { queue: _unused, ...message } = buildMessage(null, payload, options, this.options.payloadLimitBytes);
    const result = await this.insert({ kind: 'publish', topic, message }, options?.tx, 1);
    return result.map((m) => ({ queue: m.queue, id: m.id, duplicate: m.duplicate }));
  }

  /** Binds a queue to a topic: every later publish puts a copy in it. Idempotent; updates the filter. */
  async subscribe(topic: string, queue: string, options?: { filter?: HeaderFilter }): Promise<void> {
    this.assertOpen();
    assertQueueName(topic, 'topic');
    assertQueueName(queue);
    await this.store.subscriptionPut({ topic, queue, filter: parseHeaderFilter(options?.filter) });
  }

  /** Removes a binding; returns whether it existed. Messages already delivered stay. */
  async unsubscribe(topic: string, queue: string): Promise<boolean> {
    this.assertOpen();
    assertQueueName(topic, 'topic');
    assertQueueName(queue);
    return this.store.subscriptionDelete({ topic, queue });
  }

  /** Lists subscriptions, of one topic or all. */
  async subscriptions(topic?: string): Promise<Subscription[]> {
    if (topic !== undefined) assertQueueName(topic, 'topic');
    return this.store.subscriptionList({ topic });
  }

  private async insert(unit: InsertUnit, tx: unknown, weight: number): Promise<InsertedMessage[]> {
    let result = await this.insertOnce(unit, tx, weight);
    if (result.ok) return result.messages;
    const info = await this.store.queueGet({ queue: result.full.queue });
    if (info?.config.onFull === 'wait' && tx === undefined) {
      const deadline = this.options.clock.now() + info.config.fullWaitMs;
      let pause = 10;
      while (!result.ok && this.options.clock.now() < deadline) {
        await sleep(Math.min(pause, Math.max(1, deadline - this.options.clock.now())));
        pause = Math.min(pause * 2, 250);
        result = await this.insertOnce(unit, tx, weight);
      }
      if (result.ok) return result.messages;
    }
    throw new QueueFullError(result.full.queue, result.full.maxDepth, result.full.retryAfterMs);
  }

  /** One attempt to store a unit: in the shared group commit, or alone inside the caller's transaction. */
  private insertOnce(unit: InsertUnit, tx: unknown, weight: number): Promise<InsertUnitResult> {
    if (tx === undefined) return this.inserts.add(unit, weight);
    return this.store.messageInsertMany({ units: [unit], tx }).then((r) => r[0] as InsertUnitResult);
  }

  /**
   * Leases up to `max` messages (SQS-style). Each must then be acked, nacked or
   * dead-lettered with its `leaseToken` before the lease runs out, or it is
   * delivered again.
   */
  async receive<T = unknown>(queue: string, options?: ReceiveOptions): Promise<LeasedMessage<T>[]> {
    this.assertOpen();
    assertQueueName(queue);
    const max = options?.max === undefined ? 1 : positiveInt(options.max, 'max');
    if (max > 1_000) throw new ValidationError('max must be at most 1,000');
    const leaseMs = options?.leaseMs === undefined ? DEFAULT_LEASE_MS : positiveInt(options.leaseMs, 'leaseMs');
    const waitMs = options?.waitMs ?? 0;
    if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0 || waitMs > 3_600_000) {
      throw new ValidationError('waitMs must be a number of milliseconds from 0 to 3,600,000');
    }
    this.startMaintenance();
    const deadline = this.options.clock.now() + waitMs;
    const signal = waitMs > 0 ? new WakeSignal(this.store.wake, queue) : null;
    try {
      for (;;) {
        const result = await this.store.messageClaim({ queue, max, leaseMs });
        const left = deadline - this.options.clock.now();
        if (result.messages.length > 0 || left <= 0 || signal === null || this.closed) {
          return result.messages.map(leasedMessage<T>);
        }
        // Sleep until a wake-up, the next delayed message, the deadline, or a
        // one-second re-check for stores whose wake-ups cannot reach us.
        const due = result.retryAt === null ? left : Math.max(1, result.retryAt - this.options.clock.now());
        await signal.wait(Math.min(left, due, 1_000));
      }
    } finally {
      signal?.close();
    }
  }

  /** Acknowledges a leased message: it is done. Throws LeaseLostError if the token is no longer current. */
  async ack(id: string, leaseToken: string): Promise<void> {
    await this.finish({ id, leaseToken, outcome: { kind: 'ack' } });
  }

  /**
   * Gives a leased message back to be retried after `delayMs` or the backoff,
   * or dead-letters it when its attempts are used up.
   */
  async nack(id: string, leaseToken: string, options?: NackOptions): Promise<void> {
    const delayMs = options?.delayMs;
    if (delayMs !== undefined && (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0)) {
      throw new ValidationError('delayMs must be a number of milliseconds, 0 or more');
    }
    await this.finish({
      id,
      leaseToken,
      outcome: {
        kind: 'retry',
        error: errorText(options?.error, 'nacked'),
        delayMs: delayMs === undefined ? undefined : Math.floor(delayMs),
      },
    });
  }

  /** Moves a leased message to dead letters at once. */
  async deadLetter(id: string, leaseToken: string, options?: { error?: string }): Promise<void> {
    await this.finish({
      id,
      leaseToken,
      outcome: { kind: 'dead', error: errorText(options?.error, 'dead-lettered by the consumer'), reason: 'rejected' },
    });
  }

  /** Extends a held lease to `leaseMs` from now; returns the new expiry. */
  async extendLease(id: string, leaseToken: string, leaseMs: number): Promise<Date> {
    this.assertOpen();
    checkLease(id, leaseToken);
    positiveInt(leaseMs, 'leaseMs');
    const [expiry] = await this.store.messageLeaseExtend({ items: [{ id, leaseToken }], leaseMs });
    if (expiry === null || expiry === undefined) throw new LeaseLostError(id);
    return new Date(expiry);
  }

  /** Settles one leased message through the shared, coalesced completion batch. */
  private async finish(item: FinishItem): Promise<void> {
    this.assertOpen();
    checkLease(item.id, item.leaseToken);
    const result = await this.finishes.add(item);
    if (!result.ok) throw new LeaseLostError(item.id);
  }

  /**
   * Used by workers: settles through the completion batch and calls `done`
   * with the result (a lost lease is a result, not an error); `done` must
   * not throw.
   */
  settleWith(item: FinishItem, done: BatchCallback<FinishResult>): void {
    this.finishes.addWith(item, 1, done);
  }

  /** Looks a message up by id in any state (while it still exists). */
  async message<T = unknown>(id: string): Promise<MessageInfo<T> | null> {
    if (!isMessageId(id)) return null;
    const row = await this.store.messageGet({ id });
    return row === null ? null : messageInfo<T>(row);
  }

  /** Operations on one queue: configure, stats, dead letters, pause. */
  queue(name: string): QueueHandle {
    assertQueueName(name);
    return new QueueHandle(this.store, name);
  }

  /** Lists every queue that was used or configured. */
  async queues(): Promise<{ name: string; paused: boolean }[]> {
    return (await this.store.queueList()).map((q) => ({ name: q.name, paused: q.paused }));
  }

  /**
   * Starts consuming a queue: the handler is called for each message, with up to
   * `concurrency` at once. Resolving acks; throwing retries with backoff;
   * throwing UnrecoverableError dead-letters at once.
   */
  work<T = unknown>(queue: string, handler: Handler<T>, options?: WorkerOptions): Worker<T> {
    this.assertOpen();
    assertQueueName(queue);
    if (typeof handler !== 'function') throw new ValidationError('work needs a handler function');
    this.startMaintenance();
    const worker = new Worker<T>(this, queue, handler, options ?? {});
    this.workers.add(worker as Worker<unknown>);
    worker.once('closed', () => this.workers.delete(worker as Worker<unknown>));
    worker.start();
    return worker;
  }

  private startMaintenance(): void {
    if (this.maintenance !== null || !this.options.maintenance) return;
    this.maintenance = new Maintenance(this.store, this.logger, {
      sweepIntervalMs: this.options.sweepIntervalMs,
      retentionIntervalMs: this.options.retentionIntervalMs,
    });
    this.maintenance.start();
  }

  /**
   * Closes workers (letting in-flight handlers finish within their grace
   * period), waits for pending sends and acks, then closes the store.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.workers].map((w) => w.close()));
    this.closed = true;
    await this.maintenance?.stop();
    await Promise.all([this.inserts.idle(), this.finishes.idle()]);
    await this.store.close();
  }

  /** The clock this instance runs on. */
  get clock(): Clock {
    return this.options.clock;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('this Sluice instance');
  }
}

function checkLease(id: unknown, leaseToken: unknown): void {
  if (!isMessageId(id)) throw new ValidationError('id must be a message id (a string of digits)');
  if (typeof leaseToken !== 'string' || leaseToken.length === 0 || leaseToken.length > 64) {
    throw new ValidationError('leaseToken must be the token returned by receive');
  }
}

function errorText(error: unknown, fallback: string): string {
  if (error === undefined) return fallback;
  if (typeof error !== 'string') throw new ValidationError('error must be a string');
  return error;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
