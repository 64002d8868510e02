import type { SendOptions } from '../client/send-options.js';
import type { SendManyItem, SendResult, Sluice } from '../client/sluice.js';
import type { Message } from '../core/message.js';
import { ValidationError } from '../errors.js';

/**
 * What a handler gets besides its message. Sends made through it (or through
 * the Sluice instance, while the handler runs) carry the message's correlation
 * id and record it as their cause; in a transactional worker they also join
 * the handler's transaction.
 */
export class HandlerContext {
  constructor(
    private readonly sluice: Sluice,
    private readonly message: Message<unknown>,
    private readonly makeSignal: () => AbortSignal,
    /** The database transaction of a transactional worker (a `pg` client), else undefined. */
    readonly tx: unknown,
    private readonly extend: (leaseMs: number) => Promise<void>,
  ) {}

  /** Aborts when the lease is lost, the handler times out, or the worker shuts down. */
  get signal(): AbortSignal {
    return this.makeSignal();
  }

  /**
   * Runs `fn` at most once per `key` in this queue and remembers its result
   * for the queue's dedup window: a redelivered message gets the recorded
   * result back instead of repeating the effect. The record is written after
   * `fn` resolves, so a crash between the two can repeat `fn`; pass the key
   * downstream too where the effect itself can be made idempotent.
   */
  async once<R>(key: string, fn: () => R | Promise<R>): Promise<R> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 256) {
      throw new ValidationError('once() needs a key: a non-empty string of at most 256 characters');
    }
    const store = this.sluice.store;
    const found = await store.effectGet({ queue: this.message.queue, key, tx: this.tx });
    if (found !== null) return JSON.parse(found.result) as R;
    const value = await fn();
    let result: string;
    try {
      result = JSON.stringify(value === undefined ? null : value);
    } catch (error) {
      throw new ValidationError(
        `once(${JSON.stringify(key)}) result cannot be stored as JSON: ${(error as Error).message}`,
      );
    }
    await store.effectPut({ queue: this.message.queue, key, result, tx: this.tx });
    return value;
  }

  /** Sends a message caused by this one. */
  send(queue: string, payload: unknown, options?: SendOptions): Promise<SendResult> {
    return this.sluice.send(queue, payload, this.withTx(options));
  }

  /** Sends several messages caused by this one, atomically. */
  sendMany(queue: string, items: SendManyItem[]): Promise<SendResult[]> {
    return this.sluice.sendMany(queue, items, this.tx === undefined ? undefined : { tx: this.tx });
  }

  /** Publishes an event caused by this message. */
  publish(topic: string, payload: unknown, options?: SendOptions) {
    return this.sluice.publish(topic, payload, this.withTx(options));
  }

  /** Sets this message's lease to `leaseMs` from now, and keeps renewing it at that length. */
  extendLease(leaseMs: number): Promise<void> {
    return this.extend(leaseMs);
  }

  private withTx(options: SendOptions | undefined): SendOptions | undefined {
    if (this.tx === undefined || options?.tx !== undefined) return options;
    return { ...options, tx: this.tx };
  }
}
