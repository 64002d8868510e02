import pg from 'pg';
import type { QueueConfig, QueueConfigInput } from '../../core/queue-config.js';
import { InvalidUrlError, ValidationError } from '../../errors.js';
import type {
  DeadLetterFilter,
  DeadLetterListParams,
  FinishResult,
  InsertUnitResult,
  LeaseExtendResult,
  LeaseRef,
  LeaseRescueResult,
  MessageClaimParams,
  MessageClaimResult,
  MessageFinishParams,
  MessageInsertParams,
  MessageLeaseExtendParams,
  MessageRow,
  QueueInfo,
  QueueStatsRow,
  RetentionSweepResult,
  Store,
  StoreCapabilities,
  Subscription,
} from '../../store/store.js';
import * as admin from './postgres-admin.js';
import { claimLimited, claimRows } from './postgres-claim.js';
import { PgContext, type PgSession } from './postgres-context.js';
import { toStoreError } from './postgres-errors.js';
import { insertPlain, isPlainBatch, prepareInsert, writeInsert } from './postgres-insert.js';
import { PgRunner, READ, SEND, TX } from './postgres-runner.js';
import { applyMigrations, checkSchemaName } from './postgres-schema.js';
import {
  ackUnlocked,
  anyExpiredLease,
  extendLeases,
  leaseKey,
  releaseLeases,
  rescueExpiredLeases,
  settleInTransaction,
} from './postgres-settle.js';
import { PostgresWake } from './postgres-wake.js';

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions {
  /**
   * Connection URL, as `pg` reads it (`postgres://user:password@host:5432/database?sslmode=require`).
   * The query parameter `unavailableRetryMs` is read here and overrides the option of that name.
   */
  url: string;
  /** Schema holding Sluice's tables, created and migrated on open. Default `sluice`. */
  schema?: string;
  /**
   * Most connections this store opens, besides one for LISTEN/NOTIFY. Default 10.
   * A transactional worker holds one per running handler, so give it room:
   * at least the transactional concurrency plus a few.
   */
  poolSize?: number;
  /**
   * While PostgreSQL cannot be reached, how long an operation keeps trying
   * (with backoff) before failing with StoreUnavailableError. Default 10,000 ms;
   * 0 fails at once. A send is only retried when it certainly did not commit.
   */
  unavailableRetryMs?: number;
  /** How long opening a connection may take. Default 10,000 ms. */
  connectTimeoutMs?: number;
  /** Random source in [0, 1) for backoff jitter and counter shards. Default: Math.random. */
  random?: () => number;
}

const DEFAULT_POOL_SIZE = 10;
const KEYED_LEASES_KEPT = 100_000;
/** The largest id a bigint column holds; a larger "id" names no message. */
const MAX_ID = 9_223_372_036_854_775_807n;
const DEFAULT_RETRY_MS = 10_000;

/**
 * Sluice on PostgreSQL: many producer and worker processes on many hosts
 * share one schema. Claims use FOR UPDATE SKIP LOCKED, leases and delays the
 * database's clock, wake-ups LISTEN/NOTIFY with a polling fallback. Sends and
 * completions can join a caller's transaction (`tx`: a `pg` client inside
 * BEGIN), so a message exists if and only if the caller's write commits.
 */
export class PostgresStore implements Store {
  readonly capabilities: StoreCapabilities = { externalTransactions: true, multiHost: true, roundTrips: true };
  readonly wake: PostgresWake;
  private readonly runner: PgRunner;
  private readonly ctx: PgContext;
  /** Queues last seen with a concurrency or rate limit: their claims go straight to the limited path. */
  private readonly limitedQueues = new Set<string>();
  /** Leases (`leaseKey`) this process took on messages with an ordering key, oldest first. */
  private readonly keyedLeases = new Set<string>();

  private constructor(options: PostgresStoreOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new InvalidUrlError('the PostgreSQL URL is not valid; use postgres://user:password@host:5432/database');
    }
    const retryParam = url.searchParams.get('unavailableRetryMs');
    url.searchParams.delete('unavailableRetryMs');
    const schema = checkSchemaName(options.schema ?? 'sluice');
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > 1_000) {
      throw new ValidationError('poolSize must be a whole number from 1 to 1,000');
    }
    const retryMs = retryParam === null ? (options.unavailableRetryMs ?? DEFAULT_RETRY_MS) : Number(retryParam);
    if (!Number.isFinite(retryMs) || retryMs < 0) {
      throw new ValidationError('unavailableRetryMs must be a number of milliseconds, 0 or more');
    }
    this.ctx = new PgContext(schema, options.random ?? Math.random);
    this.wake = new PostgresWake(() => new pg.Client(this.runner.connection), `${schema}.wake`);
    this.runner = new PgRunner(this.ctx, this.wake, {
      connectionString: url.toString(),
      poolSize,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      retryMs,
    });
  }

  /** Connects, creating and migrating the schema when needed. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    const what = `cannot open the PostgreSQL store (schema "${store.ctx.schema}")`;
    try {
      const client = await store.runner.connect(what);
      try {
        await applyMigrations(client, store.ctx);
        client.release();
      } catch (error) {
        // A failed migration may leave the session in an aborted transaction or holding its lock.
        client.release(true);
        throw error;
      }
    } catch (error) {
      await store.close();
      throw toStoreError(error, what);
    }
    return store;
  }

  async messageInsertMany(params: MessageInsertParams): Promise<InsertUnitResult[]> {
    if (params.tx !== undefined) {
      return this.runner.inCallerTx('send', params.tx, async (db) =>
        writeInsert(db, await prepareInsert(db, params.units)),
      );
    }
    if (isPlainBatch(params.units)) {
      const plain = await this.runner.run('send', SEND, (db) => insertPlain(db, params.units));
      if (plain !== null) return plain;
    }
    const plan = await this.runner.run('send', READ, (db) => prepareInsert(db, params.units));
    return this.runner.run('send', { ...SEND, transaction: plan.needsTransaction }, (db) => writeInsert(db, plan));
  }

  async messageClaim(params: MessageClaimParams): Promise<MessageClaimResult> {
    let result: MessageClaimResult | null = null;
    if (!this.limitedQueues.has(params.queue)) {
      const fast = await this.runner.run('claim', READ, (db) => claimRows(db, params, params.max, false));
      if (fast === null) this.limitedQueues.add(params.queue);
      else result = fast.result;
    }
    result ??= await this.runner.run('claim', TX, async (db) => {
      const limited = await claimLimited(db, params);
      if (!limited.limited) this.limitedQueues.delete(params.queue);
      return limited.result;
    });
    for (const m of result.messages) if (m.orderingKey !== null) this.rememberKeyed(leaseKey(m));
    return result;
  }

  /**
   * Remembers a lease on a keyed message, so its ack goes straight to the
   * transaction that promotes the key's next message. Leases never settled
   * here (lost, or settled by another process) are forgotten oldest first.
   */
  private rememberKeyed(key: string): void {
    this.keyedLeases.add(key);
    if (this.keyedLeases.size > KEYED_LEASES_KEPT) {
      this.keyedLeases.delete(this.keyedLeases.values().next().value as string);
    }
  }

  async messageFinishMany(params: MessageFinishParams): Promise<FinishResult[]> {
    const items = params.items.filter(fitsBigint);
    const acks = items.filter((i) => i.outcome.kind === 'ack');
    const failures = items.filter((i) => i.outcome.kind !== 'ack');
    const keyedHere = new Set<string>();
    if (this.keyedLeases.size > 0) {
      for (const i of items) if (this.keyedLeases.delete(leaseKey(i))) keyedHere.add(leaseKey(i));
    }
    let results: Map<string, FinishResult>;
    if (params.tx !== undefined) {
      results = await this.runner.inCallerTx('settle', params.tx, (db) => settleInTransaction(db, acks, failures));
    } else {
      // Acks without an ordering key settle in one statement, without BEGIN/COMMIT; keyed ones
      // and failures need keys locked in the same transaction, so they take a second pass.
      // Messages this process claimed with an ordering key skip the first pass.
      let inTransaction: LeaseRef[] = keyedHere.size === 0 ? [] : acks.filter((a) => keyedHere.has(leaseKey(a)));
      const plain = keyedHere.size === 0 ? acks : acks.filter((a) => !keyedHere.has(leaseKey(a)));
      results = new Map();
      if (plain.length > 0) {
        results = await this.runner.run('settle', READ, (db) => ackUnlocked(db, plain));
        // What the first pass left (a keyed message claimed elsewhere, a lost lease, a second
        // token for one message) goes to the transaction, which settles or refuses each.
        inTransaction = [...inTransaction, ...plain.filter((a) => !results.has(leaseKey(a)))];
      }
      if (inTransaction.length > 0 || failures.length > 0) {
        const second = await this.runner.run('settle', TX, (db) => settleInTransaction(db, inTransaction, failures));
        for (const [key, result] of second) results.set(key, result);
      }
    }
    return params.items.map((i) => results.get(leaseKey(i)) ?? { ok: false, reason: 'lease_lost' });
  }

  async messageLeaseExtend(params: MessageLeaseExtendParams): Promise<LeaseExtendResult> {
    const expiries = await this.runner.run('extend leases', READ, (db) =>
      extendLeases(db, params.items.filter(fitsBigint), params.leaseMs),
    );
    const byKey = new Map(params.items.filter(fitsBigint).map((item, i) => [leaseKey(item), expiries[i] ?? null]));
    return params.items.map((item) => byKey.get(leaseKey(item)) ?? null);
  }

  async messageRelease(params: { items: LeaseRef[] }): Promise<boolean[]> {
    const items = params.items.filter(fitsBigint);
    for (const i of items) this.keyedLeases.delete(leaseKey(i));
    const released = await this.runner.run('release messages', READ, (db) => releaseLeases(db, items));
    const byKey = new Map(items.map((item, i) => [leaseKey(item), released[i] ?? false]));
    return params.items.map((item) => byKey.get(leaseKey(item)) ?? false);
  }

  async messageGet(params: { id: string }): Promise<MessageRow | null> {
    if (!fitsBigint(params)) return null;
    return this.runner.run('read a message', READ, (db) => admin.messageGet(db, params.id));
  }

  async leaseRescue(params: { limit: number }): Promise<LeaseRescueResult> {
    if (!(await this.runner.run('rescue expired leases', READ, anyExpiredLease))) {
      return { requeued: 0, deadLettered: 0, queues: [] };
    }
    return this.runner.run('rescue expired leases', TX, (db) => rescueExpiredLeases(db, params.limit));
  }

  async deadLetterList(params: DeadLetterListParams): Promise<MessageRow[]> {
    if (params.afterId !== undefined && !fitsBigint({ id: params.afterId })) return [];
    const p = { ...params, filter: bigintIds(params.filter ?? {}) };
    return this.runner.run('list dead letters', READ, (db) => admin.deadLetterList(db, p));
  }

  async deadLetterRedrive(params: { queue: string; filter: DeadLetterFilter }): Promise<number> {
    const filter = bigintIds(params.filter);
    return this.runner.run('redrive dead letters', TX, (db) => admin.deadLetterRedrive(db, params.queue, filter));
  }

  async deadLetterPurge(params: { queue: string; filter: DeadLetterFilter }): Promise<number> {
    const filter = bigintIds(params.filter);
    return this.runner.run('purge dead letters', READ, (db) => admin.deadLetterPurge(db, params.queue, filter));
  }

  async queueGet(params: { queue: string }): Promise<QueueInfo | null> {
    return this.runner.run('read a queue', READ, (db) => admin.queueGet(db, params.queue));
  }

  async queueList(): Promise<QueueInfo[]> {
    return this.runner.run('list queues', READ, (db) => admin.queueList(db));
  }

  async queueConfigure(params: { queue: string; config: QueueConfigInput }): Promise<QueueConfig> {
    return this.runner.run('configure a queue', TX, (db) => admin.queueConfigure(db, params.queue, params.config));
  }

  async queuePause(params: { queue: string; paused: boolean }): Promise<void> {
    await this.runner.run('pause or resume a queue', READ, (db) => admin.queuePause(db, params.queue, params.paused));
  }

  async queueStats(params: { queue: string }): Promise<QueueStatsRow> {
    return this.runner.run('read queue stats', READ, (db) => admin.queueStats(db, params.queue));
  }

  async subscriptionPut(params: Subscription): Promise<void> {
    await this.runner.run('subscribe', READ, (db) => admin.subscriptionPut(db, params));
  }

  async subscriptionDelete(params: { topic: string; queue: string }): Promise<boolean> {
    return this.runner.run('unsubscribe', READ, (db) => admin.subscriptionDelete(db, params.topic, params.queue));
  }

  async subscriptionList(params: { topic?: string }): Promise<Subscription[]> {
    return this.runner.run('list subscriptions', READ, (db) => admin.subscriptionList(db, params.topic));
  }

  async effectGet(params: { queue: string; key: string; tx?: unknown }): Promise<{ result: string } | null> {
    const fn = (db: PgSession) => admin.effectGet(db, params.queue, params.key);
    return params.tx === undefined
      ? this.runner.run('read a once() record', READ, fn)
      : this.runner.inCallerTx('read a once() record', params.tx, fn);
  }

  async effectPut(params: { queue: string; key: string; result: string; tx?: unknown }): Promise<void> {
    const fn = (db: PgSession) => admin.effectPut(db, params.queue, params.key, params.result);
    if (params.tx === undefined) await this.runner.run('record a once() effect', READ, fn);
    else await this.runner.inCallerTx('record a once() effect', params.tx, fn);
  }

  async retentionSweep(params: { limit: number }): Promise<RetentionSweepResult> {
    return this.runner.run('apply retention', READ, (db) => admin.retentionSweep(db, params.limit));
  }

  /**
   * Runs `fn` in a transaction on a pooled connection and passes it that
   * connection (a `pg` PoolClient) as `tx`; see PgRunner.transaction.
   */
  transaction<T>(fn: (tx: unknown) => Promise<T>): Promise<T> {
    return this.runner.transaction(fn);
  }

  async close(): Promise<void> {
    await Promise.all([this.wake.close(), this.runner.close()]);
  }
}

/** False for an "id" that is not a bigint: it names no message, and must not fail a whole batch. */
function fitsBigint(item: { id: string }): boolean {
  const id = item.id;
  if (typeof id !== 'string' || !/^[0-9]{1,19}$/.test(id)) return false;
  return id.length < 19 || BigInt(id) <= MAX_ID;
}

/** A filter whose ids are all bigints (an empty list still matches nothing). */
function bigintIds(filter: DeadLetterFilter): DeadLetterFilter {
  return filter.ids === undefined ? filter : { ...filter, ids: filter.ids.filter((id) => fitsBigint({ id })) };
}
