/**
 * The high-level consumer: a fetch loop, an executor per message, a lease
 * keeper, and settles through the instance's coalesced completion batch.
 *
 * Worker states:
 *   running  ── close() ──► stopping ──► closed
 *   running:  claims while there is room (concurrency + prefetch), runs handlers
 *   stopping: claims nothing; buffered messages are released at once; running
 *             handlers get `shutdownGraceMs` to finish, then their signals abort
 *             and their messages are released (attempt given back)
 *
 * Prefetch: unless fixed, the worker holds about 100 ms of work beyond what
 * runs, judged by a moving average of handler durations. When that work will
 * be done before a claim can come back (fast handlers, a store across the
 * network), the next claim starts before the batch in hand runs, so up to
 * twice that may be leased at once.
 *
 * Claims: an idle worker claims the moment it is woken. A busy worker that has
 * caught up with its queue (its last claim came back short) claims at most
 * every `claimIntervalMs`, so messages arriving one by one are gathered into
 * fewer claims: on SQLite every claim takes the one write lock that producers
 * in other processes need too. With a backlog it claims whenever there is room.
 *
 * A message in this process is either buffered (leased, waiting for a slot) or
 * active (its handler running). The lease keeper extends both every
 * `leaseMs / 3`; a lease it cannot extend was lost, which aborts that
 * handler's signal (or drops the buffered message) — another consumer owns it now.
 */
import { EventEmitter } from 'node:events';
import { leasedMessage } from '../client/decode.js';
import { messageScope } from '../client/message-context.js';
import type { Sluice } from '../client/sluice.js';
import { WakeSignal } from '../client/wake-signal.js';
import type { LeasedMessage, Message } from '../core/message.js';
import { nonNegativeInt, positiveInt } from '../core/queue-config.js';
import { ClosedError, HandlerTimeoutError, LeaseLostError, UnrecoverableError, ValidationError } from '../errors.js';
import type { FinishOutcome, FinishResult, LeaseRef } from '../store/store.js';
import { abort, type Delivery, describeError, signalOf } from './delivery.js';
import { HandlerContext } from './handler-context.js';

export type { HandlerContext } from './handler-context.js';

/** Automatic prefetch holds about this much work (ms at the handlers' recent speed). */
const AUTO_PREFETCH_MS = 100;
/** The most messages one worker holds beyond its running ones (also the most one claim takes). */
const MAX_PREFETCH = 1_000;

/** What one claim brought: messages, or the error that stopped it. */
type ClaimOutcome<T> = { messages: LeasedMessage<T>[]; retryAt: number | null; claimedAt: number } | { error: unknown };

/** A message handler. Resolve to ack; throw to retry; throw UnrecoverableError to dead-letter. */
export type Handler<T> = (message: Message<T>, ctx: HandlerContext) => unknown;

/** Options of `sluice.work`. */
export interface WorkerOptions {
  /** Handlers running at once in this process. Default 8. */
  concurrency?: number;
  /**
   * Messages leased ahead of a free slot, so slots refill without a round trip.
   * Default `'auto'`: about 100 ms of work at the handlers' recent speed
   * (`concurrency` until the first handlers finish), at most 1,000. Fast
   * handlers get large batched claims; slow ones almost no prefetch, so a
   * crash or a slow worker never holds many messages away from other workers.
   */
  prefetch?: number | 'auto';
  /** Lease length; kept extended while a handler runs. Default 30,000 ms. */
  leaseMs?: number;
  /** A handler running longer fails its attempt and its signal aborts; 0 disables. Default 300,000 ms. */
  timeoutMs?: number;
  /** How often an idle worker looks for messages when no wake-up reaches it. Default 1,000 ms. */
  pollIntervalMs?: number;
  /**
   * While handlers run and the queue has no backlog, the least time between
   * two claims, so messages arriving one at a time are claimed together.
   * An idle worker always claims at once. Default 5 ms; 0 claims on every wake-up.
   */
  claimIntervalMs?: number;
  /** On close, how long running handlers may take to finish before their messages are released. Default 10,000 ms. */
  shutdownGraceMs?: number;
  /** Custom retry delay; return undefined to use the queue's backoff. */
  retryDelayMs?: (attempt: number, error: unknown, message: Message<unknown>) => number | undefined;
  /**
   * PostgreSQL only: run each handler in a database transaction (`ctx.tx`) that
   * also acks the message, so the handler's own writes happen exactly once.
   */
  transactional?: boolean;
}

/** Events: `completed` (message), `failed` (message, error, result), `error` (error), `closed`. */
export class Worker<T> extends EventEmitter {
  readonly queue: string;
  private readonly concurrency: number;
  /** A fixed prefetch, or null for automatic. */
  private readonly fixedPrefetch: number | null;
  /** Moving average of handler durations (ms), for automatic prefetch; null before the first. */
  private handlerMs: number | null = null;
  /** Moving average of claim durations (ms), for claiming ahead; null before the first. */
  private claimMs: number | null = null;
  private readonly leaseMs: number;
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly claimIntervalMs: number;
  private readonly graceMs: number;
  private readonly options: WorkerOptions;
  private readonly active = new Map<string, Delivery<T>>();
  private buffer: Delivery<T>[] = [];
  /** Settles sent to the store and not yet answered; close waits for them. */
  private settlingCount = 0;
  private dispatching = false;
  private readonly settledWaiters: (() => void)[] = [];
  private state: 'created' | 'running' | 'stopping' | 'closed' = 'created';
  private signal: WakeSignal | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private keeper: NodeJS.Timeout | null = null;
  private timeouts: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** Called when the last running handler finishes (used by shutdown). */
  private readonly drainWaiters: (() => void)[] = [];

  constructor(
    private readonly sluice: Sluice,
    queue: string,
    private readonly handler: Handler<T>,
    options: WorkerOptions,
  ) {
    super();
    this.queue = queue;
    this.options = options;
    this.concurrency = options.concurrency === undefined ? 8 : positiveInt(options.concurrency, 'concurrency');
    this.fixedPrefetch =
      options.prefetch === undefined || options.prefetch === 'auto'
        ? null
        : nonNegativeInt(options.prefetch, 'prefetch');
    this.leaseMs = options.leaseMs === undefined ? 30_000 : positiveInt(options.leaseMs, 'leaseMs');
    this.timeoutMs = options.timeoutMs === undefined ? 300_000 : nonNegativeInt(options.timeoutMs, 'timeoutMs');
    this.pollIntervalMs =
      options.pollIntervalMs === undefined ? 1_000 : positiveInt(options.pollIntervalMs, 'pollIntervalMs');
    this.claimIntervalMs =
      options.claimIntervalMs === undefined ? 5 : nonNegativeInt(options.claimIntervalMs, 'claimIntervalMs');
    this.graceMs =
      options.shutdownGraceMs === undefined ? 10_000 : nonNegativeInt(options.shutdownGraceMs, 'shutdownGraceMs');
    if (options.transactional && !sluice.store.capabilities.externalTransactions) {
      throw new ValidationError('transactional workers need a store that supports transactions (PostgreSQL)');
    }
  }

  /** @internal started by `sluice.work`. */
  start(): void {
    if (this.state !== 'created') return;
    this.state = 'running';
    this.signal = new WakeSignal(this.sluice.store.wake, this.queue);
    this.keeper = setInterval(() => void this.keepLeases(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.keeper.unref();
    if (this.timeoutMs > 0) {
      // One check for every running handler instead of a timer per message
      // (timers cost more than the work of a short handler); a handler times
      // out at most a tenth of its timeout (or a second) late.
      this.timeouts = setInterval(() => this.expireTimeouts(), Math.min(1_000, Math.max(10, this.timeoutMs / 10)));
      this.timeouts.unref();
    }
    this.loopDone = this.loop();
  }

  /** Messages whose handlers are running now. */
  get running(): number {
    return this.active.size;
  }

  private async loop(): Promise<void> {
    const signal = this.signal as WakeSignal;

    let errorDelay = 0;
    let caughtUp = false;
    let lastClaimAt = 0;
    // A claim started before the last batch was handed out (see claimAhead), and its size.
    let ahead: { outcome: Promise<ClaimOutcome<T>>; asked: number } | null = null;
    while (this.state === 'running') {
      let outcome: ClaimOutcome<T>;
      let asked: number;
      if (ahead !== null) {
        asked = ahead.asked;
        outcome = await ahead.outcome;
        ahead = null;
      } else {
        const prefetch = this.prefetch();
        const lowWater = Math.floor(prefetch / 2);
        const room = this.concurrency + prefetch - this.active.size - this.buffer.length;
        // Refill in batches: claim when a slot is idle or the buffer runs low,
        // not once per finished message.
        const starving = this.active.size < this.concurrency && this.buffer.length === 0;
        if (room <= 0 || (!starving && this.buffer.length > lowWater)) {
          await signal.wait(this.pollIntervalMs);
          continue;
        }
        if (caughtUp && this.active.size > 0) {
          const wait = lastClaimAt + this.claimIntervalMs - this.sluice.clock.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          if (this.state !== 'running') break;
        }
        asked = Math.min(room, MAX_PREFETCH);
        lastClaimAt = this.sluice.clock.now();
        outcome = await this.claim(asked);
      }
      if ('error' in outcome) {
        // The store is unreachable (database restarting, disk full): back off and retry forever.
        errorDelay = Math.min(Math.max(100, errorDelay * 2), 5_000);
        this.report(outcome.error, 'claim failed; retrying');
        await signal.wait(errorDelay);
        continue;
      }
      errorDelay = 0;
      this.hold(outcome);
      caughtUp = outcome.messages.length < asked;
      if (caughtUp) {
        this.dispatch();
        const now = this.sluice.clock.now();
        const due = outcome.retryAt === null ? this.pollIntervalMs : Math.max(1, outcome.retryAt - now);
        await signal.wait(Math.min(due, this.pollIntervalMs));
      } else if (outcome.messages.length > 0) {
        if (this.state === 'running' && this.claimAhead()) {
          const size = Math.min(this.concurrency + this.prefetch(), MAX_PREFETCH);
          lastClaimAt = this.sluice.clock.now();
          ahead = { outcome: this.claim(size), asked: size };
          // A turn of the event loop first lets the claim's request go out
          // before fast handlers take the thread.
          await new Promise((resolve) => setImmediate(resolve));
          this.dispatch();
        } else {
          this.dispatch();
          // A synchronous store answers a claim without real I/O, and fast
          // handlers finish in microtasks: without a turn of the event loop here
          // the loop could drain a whole backlog before any ack is written or
          // any timer (the lease keeper among them) runs.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } else {
        this.dispatch();
      }
    }
    // Messages of a claim still on its way belong in the buffer, which shutdown releases.
    if (ahead !== null) {
      const outcome = await ahead.outcome;
      if (!('error' in outcome)) this.hold(outcome);
    }
  }

  /**
   * Whether to start the next claim before handing out the batch just
   * claimed: with automatic prefetch, when the store answers over the network
   * and the work in hand (running and buffered) will be done before a claim
   * could come back. The claim's round trip then overlaps the handlers and
   * the acks instead of following them; with a backlog and fast handlers, a
   * worker otherwise idles for the length of every claim (on PostgreSQL, a
   * 1,000-message claim took 25–45 ms while those handlers took 13 ms). A
   * fixed prefetch is a bound the caller chose, so it never claims ahead.
   */
  private claimAhead(): boolean {
    if (this.fixedPrefetch !== null || this.sluice.store.capabilities.roundTrips !== true) return false;
    if (this.claimMs === null || this.handlerMs === null) return false;
    const inHandMs = ((this.active.size + this.buffer.length) * this.handlerMs) / this.concurrency;
    return inHandMs < this.claimMs;
  }

  /** One claim, timed; a failure is returned, not thrown. */
  private async claim(asked: number): Promise<ClaimOutcome<T>> {
    const started = this.sluice.clock.now();
    try {
      const result = await this.sluice.store.messageClaim({ queue: this.queue, max: asked, leaseMs: this.leaseMs });
      const took = this.sluice.clock.now() - started;
      this.claimMs = this.claimMs === null ? took : this.claimMs + (took - this.claimMs) * 0.2;
      return { messages: result.messages.map(leasedMessage<T>), retryAt: result.retryAt, claimedAt: started };
    } catch (error) {
      return { error };
    }
  }

  /** Buffers claimed messages until a slot frees. */
  private hold(outcome: { messages: LeasedMessage<T>[]; claimedAt: number }): void {
    for (const message of outcome.messages) {
      this.buffer.push({
        message,
        controller: null,
        abortReason: undefined,
        leaseMs: this.leaseMs,
        localExpiry: outcome.claimedAt + this.leaseMs,
        leaseLost: false,
        released: false,
        startedAt: 0,
        fail: null,
      });
    }
  }

  /** Messages to hold beyond the running ones: fixed, or about AUTO_PREFETCH_MS of work. */
  private prefetch(): number {
    if (this.fixedPrefetch !== null) return this.fixedPrefetch;
    if (this.handlerMs === null) return this.concurrency;
    const perSlot = AUTO_PREFETCH_MS / Math.max(this.handlerMs, 0.01);
    return Math.max(1, Math.min(MAX_PREFETCH, Math.round(this.concurrency * perSlot)));
  }

  private dispatch(): void {
    // A handler that returns at once finishes inside execute(), whose finish()
    // calls dispatch() again: this loop picks up the freed slot instead, so the
    // stack stays flat however many such handlers run in a row.
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      while (this.active.size < this.concurrency && this.buffer.length > 0 && this.state === 'running') {
        const entry = this.buffer.shift() as Delivery<T>;
        // A buffered message whose lease ran out while this process was stalled
        // may already be someone else's: running it would only duplicate work.
        if (entry.localExpiry <= this.sluice.clock.now()) {
          entry.leaseLost = true;
          continue;
        }
        this.active.set(entry.message.id, entry);
        this.execute(entry);
      }
    } finally {
      this.dispatching = false;
    }
  }

  /**
   * Runs one message's handler and settles it. A handler that returns without
   * a promise is settled at once, and an async one through its own promise
   * raced against its timeout: at tens of thousands of messages a second, each
   * promise made per message (and the scope tracking every promise pays) is a
   * measurable share.
   */
  private execute(entry: Delivery<T>): void {
    if (this.options.transactional) {
      this.runInTransaction(entry).then(
        () => this.finish(entry, null, undefined),
        (error: unknown) => this.fail(entry, error),
      );
      return;
    }
    let result: unknown;
    try {
      result = this.runHandler(entry, undefined);
    } catch (error) {
      this.fail(entry, error);
      return;
    }
    if (!isThenable(result)) this.finish(entry, ACK, undefined);
    else
      this.withTimeout(entry, result).then(
        () => this.finish(entry, ACK, undefined),
        (error: unknown) => this.fail(entry, error),
      );
  }

  /** After a handler that threw, rejected or timed out: retry or dead-letter per policy. */
  private fail(entry: Delivery<T>, error: unknown): void {
    this.finish(entry, this.failureOutcome(entry.message, error), error);
  }

  /** After a handler: frees its slot and settles the message (outcome null: acked in its transaction). */
  private finish(entry: Delivery<T>, outcome: FinishOutcome | null, failure: unknown): void {
    const { message } = entry;
    if (entry.startedAt > 0) {
      const took = this.sluice.clock.now() - entry.startedAt;
      this.handlerMs = this.handlerMs === null ? took : this.handlerMs + (took - this.handlerMs) * 0.1;
    }
    this.active.delete(message.id);
    this.signal?.fire();
    this.dispatch();
    if (this.active.size === 0) for (const done of [...this.drainWaiters]) done();
    if (entry.released || entry.leaseLost) {
      if (entry.leaseLost)
        this.emit('failed', message, failure ?? new LeaseLostError(message.id), { ok: false, reason: 'lease_lost' });
      return;
    }
    if (outcome === null) {
      this.settled(message, failure, { ok: true, state: 'deleted' });
      return;
    }
    this.settlingCount += 1;
    this.sluice.settleWith({ id: message.id, leaseToken: message.leaseToken, outcome }, (error, result) => {
      try {
        if (error === undefined) this.settled(message, failure, result as FinishResult);
        // The store is down: the lease will expire and the message be delivered again.
        else this.report(error, 'could not settle a message; it will be delivered again after its lease expires');
      } catch (listenerError) {
        this.report(listenerError, 'a completed or failed listener threw');
      } finally {
        this.settlingCount -= 1;
        if (this.settlingCount === 0) for (const wake of this.settledWaiters.splice(0)) wake();
      }
    });
  }

  private settled(message: LeasedMessage<T>, failure: unknown, result: FinishResult): void {
    if (failure === undefined && result.ok) this.emit('completed', message);
    else this.emit('failed', message, failure ?? new LeaseLostError(message.id), result);
    if (!result.ok) {
      this.sluice.logger.warn(
        { queue: this.queue, messageId: message.id, correlationId: message.correlationId },
        'lease was lost before the message was settled; another delivery will handle it',
      );
    }
  }

  private failureOutcome(message: LeasedMessage<T>, error: unknown): FinishOutcome {
    const text = describeError(error);
    if (error instanceof UnrecoverableError) return { kind: 'dead', error: text, reason: 'unrecoverable' };
    let delayMs: number | undefined;
    if (this.options.retryDelayMs !== undefined) {
      try {
        const d = this.options.retryDelayMs(message.attempt, error, message as Message<unknown>);
        if (d !== undefined && Number.isFinite(d) && d >= 0) delayMs = Math.floor(d);
      } catch (e) {
        this.report(e, 'retryDelayMs threw; using the queue backoff');
      }
    }
    return { kind: 'retry', error: text, delayMs };
  }

  /** Runs the handler with its context and scope; returns what it returns (a promise for async handlers). */
  private runHandler(entry: Delivery<T>, tx: unknown): unknown {
    const { message } = entry;
    const ctx = new HandlerContext(
      this.sluice,
      message,
      () => signalOf(entry),
      tx,
      (ms) => this.extendOne(entry, ms),
    );
    const scope = { messageId: message.id, correlationId: message.correlationId };
    entry.startedAt = this.sluice.clock.now();
    return messageScope.run(scope, () => this.handler(message, ctx));
  }

  /** Fails the attempts of handlers running longer than timeoutMs and aborts their signals. */
  private expireTimeouts(): void {
    const deadline = this.sluice.clock.now() - this.timeoutMs;
    for (const entry of this.active.values()) {
      if (entry.fail === null || entry.startedAt > deadline) continue;
      const error = new HandlerTimeoutError(this.timeoutMs);
      const fail = entry.fail;
      entry.fail = null;
      abort(entry, error);
      fail(error);
    }
  }

  /** Transactional mode: the handler's writes and the ack commit together, or neither does. */
  private async runInTransaction(entry: Delivery<T>): Promise<void> {
    const { message } = entry;
    await this.sluice.store.transaction(async (tx) => {
      await this.withTimeout(entry, this.runHandler(entry, tx));
      const [result] = await this.sluice.store.messageFinishMany({
        items: [{ id: message.id, leaseToken: message.leaseToken, outcome: { kind: 'ack' } }],
        tx,
      });
      // Rolling back undoes the handler's writes: the current lease holder redoes them.
      if (!result?.ok) throw new LeaseLostError(message.id);
    });
  }

  /** The handler's result, or a rejection when it times out first (entry.fail, called by expireTimeouts). */
  private withTimeout(entry: Delivery<T>, result: unknown): Promise<unknown> {
    if (this.timeoutMs === 0 || !isThenable(result)) return Promise.resolve(result);
    return new Promise((resolve, reject) => {
      entry.fail = reject;
      result.then(resolve, reject);
    });
  }

  private async extendOne(entry: Delivery<T>, leaseMs: number): Promise<void> {
    positiveInt(leaseMs, 'leaseMs');
    const startedAt = this.sluice.clock.now();
    const [expiry] = await this.sluice.store.messageLeaseExtend({
      items: [{ id: entry.message.id, leaseToken: entry.message.leaseToken }],
      leaseMs,
    });
    if (expiry === null || expiry === undefined) {
      this.loseLease(entry);
      throw new LeaseLostError(entry.message.id);
    }
    entry.leaseMs = leaseMs;
    entry.localExpiry = startedAt + leaseMs;
  }

  private async keepLeases(): Promise<void> {
    const entries = [...this.active.values(), ...this.buffer];
    if (entries.length === 0) return;
    const byLength = new Map<number, Delivery<T>[]>();
    for (const e of entries) {
      const list = byLength.get(e.leaseMs);
      if (list === undefined) byLength.set(e.leaseMs, [e]);
      else list.push(e);
    }
    for (const [leaseMs, list] of byLength) {
      try {
        const refs: LeaseRef[] = list.map((e) => ({ id: e.message.id, leaseToken: e.message.leaseToken }));
        const startedAt = this.sluice.clock.now();
        const expiries = await this.sluice.store.messageLeaseExtend({ items: refs, leaseMs });
        list.forEach((e, i) => {
          if (expiries[i] === null) this.loseLease(e);
          else e.localExpiry = startedAt + leaseMs;
        });
      } catch (error) {
        this.report(error, 'could not extend leases; will try again');
      }
    }
  }

  private loseLease(entry: Delivery<T>): void {
    if (entry.leaseLost || entry.released) return;
    entry.leaseLost = true;
    const index = this.buffer.indexOf(entry);
    if (index >= 0) this.buffer.splice(index, 1);
    abort(entry, new LeaseLostError(entry.message.id));
  }

  private report(error: unknown, message: string): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.sluice.logger.warn({ queue: this.queue, err: error }, message);
  }

  /**
   * Stops claiming, releases buffered messages, waits up to `shutdownGraceMs`
   * for running handlers, then aborts and releases the rest. Safe to call twice.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'created') {
      this.state = 'closed';
      this.emit('closed');
      return;
    }
    this.state = 'stopping';
    this.signal?.close();
    await this.loopDone;
    await this.release(this.buffer.splice(0));
    if (this.active.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.graceMs);
        const waiters = this.drainWaiters;
        function done(): void {
          clearTimeout(timer);
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          resolve();
        }
        waiters.push(done);
      });
    }
    const stragglers = [...this.active.values()];
    for (const entry of stragglers) {
      entry.released = true;
      abort(entry, new ClosedError(`worker for queue "${this.queue}"`));
    }
    await this.release(stragglers);
    if (this.settlingCount > 0) await new Promise<void>((resolve) => this.settledWaiters.push(resolve));
    if (this.keeper !== null) clearInterval(this.keeper);
    if (this.timeouts !== null) clearInterval(this.timeouts);
    this.state = 'closed';
    this.emit('closed');
  }

  private async release(entries: Delivery<T>[]): Promise<void> {
    if (entries.length === 0) return;
    for (const e of entries) e.released = true;
    try {
      await this.sluice.store.messageRelease({
        items: entries.map((e) => ({ id: e.message.id, leaseToken: e.message.leaseToken })),
      });
    } catch (error) {
      this.report(error, 'could not release messages at shutdown; they return when their leases expire');
    }
  }
}

const ACK: FinishOutcome = { kind: 'ack' };

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
