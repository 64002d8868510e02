import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type Clock, systemClock } from '../../core/clock.js';
import type { QueueConfig, QueueConfigInput } from '../../core/queue-config.js';
import { ClosedError, SchemaTooNewError, SluiceError, StoreUnavailableError, UnsupportedError } from '../../errors.js';
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
import { LoopYield } from './loop-yield.js';
import * as admin from './sqlite-admin.js';
import { claimMessages } from './sqlite-claim.js';
import type { WakeSet } from './sqlite-context.js';
import { SqliteContext } from './sqlite-context.js';
import { insertUnits } from './sqlite-insert.js';
import { SQLITE_MIGRATIONS } from './sqlite-schema.js';
import { extendLeases, finishMessages, releaseLeases, rescueExpiredLeases } from './sqlite-settle.js';
import { SqliteWake } from './sqlite-wake.js';
import { WalSync } from './wal-sync.js';

/** Options of the embedded SQLite store. */
export interface SqliteStoreOptions {
  /** Database file; created with its folder if missing. */
  path: string;
  /**
   * `'full'` (default): sends, acks and admin changes resolve only once their
   * commit is fsynced, so they survive power loss; concurrent commits share one
   * fsync, run off the event loop. `'normal'` does not wait for the disk:
   * faster, but the last commits may be lost on power loss (never on a crash).
   */
  synchronous?: 'full' | 'normal';
  /** How long a write waits for another process's write lock. Default 5,000 ms. */
  busyTimeoutMs?: number;
  /** Time source for leases and delays. Default: the system clock. */
  clock?: Clock;
  /** Random source in [0, 1) for backoff jitter. Default: Math.random. */
  random?: () => number;
}

/**
 * The default store: one SQLite file in WAL mode, shared by any number of
 * processes on one machine. better-sqlite3 is synchronous, so each method runs
 * its whole transaction at once; group commit above this layer is what makes
 * it fast, since a commit costs one fsync whatever it holds.
 */
export class SqliteStore implements Store {
  readonly capabilities: StoreCapabilities = { externalTransactions: false, multiHost: false, roundTrips: false };
  readonly wake: SqliteWake;
  private readonly db: Database.Database;
  private readonly ctx: SqliteContext;
  private readonly runImmediate: (fn: () => unknown) => unknown;
  private readonly busyTimeoutMs: number;
  /** Set when acknowledged writes must be on disk before they resolve (synchronous 'full'). */
  private readonly walSync: WalSync | null;
  /** Lets the event loop turn during long runs of awaited calls (see LoopYield). */
  private readonly loopYield = new LoopYield();
  private closed = false;

  private constructor(options: SqliteStoreOptions) {
    const file = path.resolve(options.path);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    try {
      // better-sqlite3 waits for a lock synchronously, freezing the event loop
      // (and with it the lease keeper). Wait only briefly there; longer waits
      // happen in write() without blocking.
      this.db = new Database(file, { timeout: SYNC_BUSY_WAIT_MS });
      // Commits never fsync inside COMMIT (that would stall the event loop);
      // with 'full', durable operations await a group fsync of the WAL instead.
      this.db.pragma('synchronous = NORMAL');
      // Keep the WAL from growing without bound between checkpoints after bursts.
      this.db.pragma('journal_size_limit = 67108864');
      this.db.pragma('cache_size = -16000');
    } catch (error) {
      throw wrap(error, `cannot open SQLite database at ${file}`);
    }
    this.wake = new SqliteWake(file);
    this.ctx = new SqliteContext(this.db, options.clock ?? systemClock, this.wake, options.random ?? Math.random);
    const tx = this.db.transaction((fn: () => unknown) => fn());
    this.runImmediate = (fn) => tx.immediate(fn);
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
    this.walSync = options.synchronous === 'normal' ? null : new WalSync(`${file}-wal`);
  }

  /** Opens (creating if needed) and migrates a database file. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const store = new SqliteStore(options);
    try {
      // Switching to WAL needs a moment of exclusive access; processes opening
      // the same new file at once take turns here.
      await store.withBusyRetry('cannot switch SQLite to WAL mode', () => store.db.pragma('journal_mode = WAL'));
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    await this.durableWrite(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version > SQLITE_MIGRATIONS.length) throw new SchemaTooNewError(version, SQLITE_MIGRATIONS.length);
      for (let v = version; v < SQLITE_MIGRATIONS.length; v++) this.db.exec(SQLITE_MIGRATIONS[v] as string);
      this.db.pragma(`user_version = ${SQLITE_MIGRATIONS.length}`);
    });
  }

  /**
   * Runs `fn` in BEGIN IMMEDIATE (taking the write lock up front, so two
   * processes never deadlock upgrading a read) and wakes the queues it touched
   * once it has committed. Resolves without waiting for the disk: for claims,
   * lease changes and rescues, whose loss in a power cut only means a
   * message is delivered again.
   */
  private async write<T>(fn: (wake: WakeSet) => T): Promise<T> {
    return this.withBusyRetry('SQLite write failed', () => {
      const wake: WakeSet = new Set();
      const result = this.runImmediate(() => fn(wake)) as T;
      if (wake.size > 0) this.wake.signal(wake);
      return result;
    });
  }

  /**
   * As write(), and resolves only once the commit is on disk: sends, acks,
   * admin changes. `inline` lets a lone commit fsync on this thread (see WalSync).
   */
  private async durableWrite<T>(fn: (wake: WakeSet) => T, inline = true): Promise<T> {
    const result = await this.write(fn);
    if (this.walSync !== null) {
      try {
        await this.walSync.sync(inline);
      } catch (error) {
        throw new StoreUnavailableError(`could not make the commit durable: ${(error as Error).message}`, error);
      }
    }
    return result;
  }

  private async read<T>(fn: () => T): Promise<T> {
    return this.withBusyRetry('SQLite read failed', fn);
  }

  /**
   * Another process holds the write lock: yield to the event loop and try
   * again with a short, growing, jittered pause, until busyTimeoutMs. A failed
   * attempt rolled back, so retrying the whole transaction is safe.
   */
  private async withBusyRetry<T>(what: string, attempt: () => T): Promise<T> {
    const pause = this.loopYield.pause();
    if (pause !== null) await pause;
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let tries = 0; ; tries++) {
      if (this.closed) throw new ClosedError('the SQLite store');
      try {
        return attempt();
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw wrap(error, what);
      }
      // Locks are held for well under a millisecond: look again right after
      // other pending work, then every millisecond or so. Growing the pause
      // would only let other processes keep winning the lock.
      if (tries === 0) await new Promise((resolve) => setImmediate(resolve));
      else await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  async messageInsertMany(params: MessageInsertParams): Promise<InsertUnitResult[]> {
    noExternalTx(params.tx);
    return this.durableWrite((wake) => insertUnits(this.ctx, params.units, wake));
  }

  async messageClaim(params: MessageClaimParams): Promise<MessageClaimResult> {
    return this.write(() => claimMessages(this.ctx, params));
  }

  async messageFinishMany(params: MessageFinishParams): Promise<FinishResult[]> {
    noExternalTx(params.tx);
    return this.durableWrite((wake) => finishMessages(this.ctx, params.items, wake), false);
  }

  async messageLeaseExtend(params: MessageLeaseExtendParams): Promise<LeaseExtendResult> {
    return this.write(() => extendLeases(this.ctx, params.items, params.leaseMs));
  }

  async messageRelease(params: { items: LeaseRef[] }): Promise<boolean[]> {
    return this.write((wake) => releaseLeases(this.ctx, params.items, wake));
  }

  async messageGet(params: { id: string }): Promise<MessageRow | null> {
    return this.read(() => admin.messageGet(this.ctx, params.id));
  }

  async leaseRescue(params: { limit: number }): Promise<LeaseRescueResult> {
    return this.write((wake) => rescueExpiredLeases(this.ctx, params.limit, wake));
  }

  async deadLetterList(params: DeadLetterListParams): Promise<MessageRow[]> {
    return this.read(() => admin.deadLetterList(this.ctx, params));
  }

  async deadLetterRedrive(params: { queue: string; filter: DeadLetterFilter }): Promise<number> {
    return this.durableWrite((wake) => admin.deadLetterRedrive(this.ctx, params.queue, params.filter, wake));
  }

  async deadLetterPurge(params: { queue: string; filter: DeadLetterFilter }): Promise<number> {
    return this.durableWrite(() => admin.deadLetterPurge(this.ctx, params.queue, params.filter));
  }

  async queueGet(params: { queue: string }): Promise<QueueInfo | null> {
    return this.read(() => admin.queueGet(this.ctx, params.queue));
  }

  async queueList(): Promise<QueueInfo[]> {
    return this.read(() => admin.queueList(this.ctx));
  }

  async queueConfigure(params: { queue: string; config: QueueConfigInput }): Promise<QueueConfig> {
    return this.durableWrite((wake) => admin.queueConfigure(this.ctx, params.queue, params.config, wake));
  }

  async queuePause(params: { queue: string; paused: boolean }): Promise<void> {
    await this.durableWrite((wake) => admin.queuePause(this.ctx, params.queue, params.paused, wake));
  }

  async queueStats(params: { queue: string }): Promise<QueueStatsRow> {
    // One read transaction so the counts are a consistent snapshot.
    return this.read(() => this.db.transaction(() => admin.queueStats(this.ctx, params.queue)).deferred());
  }

  async subscriptionPut(params: Subscription): Promise<void> {
    await this.durableWrite(() => admin.subscriptionPut(this.ctx, params));
  }

  async subscriptionDelete(params: { topic: string; queue: string }): Promise<boolean> {
    return this.durableWrite(() => admin.subscriptionDelete(this.ctx, params.topic, params.queue));
  }

  async subscriptionList(params: { topic?: string }): Promise<Subscription[]> {
    return this.read(() => admin.subscriptionList(this.ctx, params.topic));
  }

  async effectGet(params: { queue: string; key: string; tx?: unknown }): Promise<{ result: string } | null> {
    noExternalTx(params.tx);
    return this.read(() => admin.effectGet(this.ctx, params.queue, params.key));
  }

  async effectPut(params: { queue: string; key: string; result: string; tx?: unknown }): Promise<void> {
    noExternalTx(params.tx);
    await this.durableWrite(() => admin.effectPut(this.ctx, params.queue, params.key, params.result));
  }

  async retentionSweep(params: { limit: number }): Promise<RetentionSweepResult> {
    return this.write(() => admin.retentionSweep(this.ctx, params.limit));
  }

  async transaction<T>(_fn: (tx: unknown) => Promise<T>): Promise<T> {
    throw new UnsupportedError(
      'transactions that span your own code are not available on the SQLite store; use PostgreSQL for transactional send and completion',
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake.close();
    this.walSync?.close();
    this.db.close();
  }
}

/**
 * How long a statement may block the event loop waiting for another process's
 * lock: not at all; waiting happens in withBusyRetry, which yields.
 */
const SYNC_BUSY_WAIT_MS = 0;

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

function noExternalTx(tx: unknown): void {
  if (tx !== undefined) {
    throw new UnsupportedError(
      'the SQLite store cannot join your transaction (option tx); transactional send and completion need PostgreSQL',
    );
  }
}

/** Turns SQLite failures into a StoreUnavailableError that says what happened; anything else passes through. */
function wrap(error: unknown, what: string): unknown {
  if (error instanceof SluiceError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return error;
  const hint =
    code === 'SQLITE_FULL'
      ? 'the disk is full; nothing was written, and the store resumes on its own once space is freed'
      : code === 'SQLITE_BUSY'
        ? 'another process held the write lock too long; raise busyTimeoutMs or reduce contention'
        : code === 'SQLITE_READONLY'
          ? 'the database file or its folder is not writable'
          : code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB'
            ? 'the file is not a healthy SQLite database'
            : error.message;
  return new StoreUnavailableError(`${what}: ${hint} (${code})`, error);
}
