/**
 * How the PostgreSQL store's operations meet connections: on a pooled
 * connection (alone or in a transaction, retried while the database is away
 * when that is safe), inside a caller's transaction, or as a transaction that
 * spans the caller's code (`transaction()`). Wake-ups gathered by an
 * operation are sent once its work is committed.
 */
import pg from 'pg';
import { ClosedError, StoreUnavailableError, ValidationError } from '../../errors.js';
import { type PgContext, type PgQueryable, PgSession } from './postgres-context.js';
import { isConnectionError, isTransientConflict, isUnsentError, toStoreError } from './postgres-errors.js';
import { NOTIFY_SQL, type PostgresWake } from './postgres-wake.js';

/** How an operation runs: in one transaction or as separate statements; and whether it may simply be run again. */
export interface RunMode {
  transaction: boolean;
  /**
   * True when repeating the operation after an unknown outcome is harmless
   * (claims, settles, reads). False for sends: a send that may have committed
   * is reported, not repeated, so it is never stored twice.
   */
  repeatable: boolean;
}

/**
 * Purpose: settings of the store's own connections. Every statement the store
 * runs is a named prepared statement, planned once per connection. Left to
 * `auto`, PostgreSQL re-plans a statement for every execution whenever its
 * generic plan looks costlier than a plan for the given values; for the
 * insert, whose row count comes from the length of array parameters, it
 * always does, and planning (about 0.8 ms) cost more than running it (about
 * 0.3 ms for one message). The store's statements are written so that one
 * plan suits every call (partial indexes chosen by literal states, lookups
 * by key), so the generic plan is always used. `transaction()` restores the
 * server's default for the caller's own statements.
 */
const SESSION_SQL = 'SET plan_cache_mode = force_generic_plan';

export const READ: RunMode = { transaction: false, repeatable: true };
export const TX: RunMode = { transaction: true, repeatable: true };
export const SEND: RunMode = { transaction: false, repeatable: false };

export interface PgRunnerOptions {
  connectionString: string;
  poolSize: number;
  connectTimeoutMs: number;
  /** How long operations keep retrying while the database cannot be reached. */
  retryMs: number;
}

export class PgRunner {
  /** The settings of every connection, the pool's and the LISTEN connection's. */
  readonly connection: pg.ClientConfig;
  private readonly pool: pg.Pool;
  private readonly retryMs: number;
  /** Transactions opened by `transaction()`: their wake-ups are sent after their commit. */
  private readonly ownTransactions = new WeakMap<object, Set<string>>();
  private closed = false;

  constructor(
    private readonly ctx: PgContext,
    private readonly wake: PostgresWake,
    options: PgRunnerOptions,
  ) {
    this.retryMs = options.retryMs;
    this.connection = {
      connectionString: options.connectionString,
      keepAlive: true,
      connectionTimeoutMillis: options.connectTimeoutMs,
    };
    this.pool = new pg.Pool({
      ...this.connection,
      max: options.poolSize,
      idleTimeoutMillis: 30_000,
      // Runs on each new connection before its first use.
      onConnect: (client) => client.query(SESSION_SQL),
    });
    // An idle connection the server dropped is discarded by the pool; the next
    // checkout opens a fresh one. Without a listener the event would crash the process.
    this.pool.on('error', () => undefined);
    // A checked-out connection can fail between statements too (backend terminated).
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** A pooled connection, retrying while the server cannot be reached, until `deadline`. */
  async connect(what: string, deadline = performance.now() + this.retryMs): Promise<pg.PoolClient> {
    let delay = 50;
    for (;;) {
      if (this.closed) throw new ClosedError('the PostgreSQL store');
      try {
        return await this.pool.connect();
      } catch (error) {
        if (!isConnectionError(error) || performance.now() + delay > deadline) throw toStoreError(error, what);
        await sleep(delay);
        delay = Math.min(delay * 2, 1_000);
      }
    }
  }

  /**
   * Runs an operation on a pooled connection, in a transaction when asked, and
   * wakes the queues it touched once it has committed. Failures that certainly
   * changed nothing (no connection, a rolled-back transaction, a deadlock) are
   * retried up to `unavailableRetryMs`; so are unknown outcomes of repeatable
   * operations. Anything else becomes a StoreUnavailableError.
   */
  async run<T>(what: string, mode: RunMode, fn: (db: PgSession) => Promise<T>): Promise<T> {
    const deadline = performance.now() + this.retryMs;
    let delay = 50;
    for (;;) {
      const client = await this.connect(what, deadline);
      let committing = false;
      try {
        const db = new PgSession(this.ctx, client, true, mode.transaction);
        if (mode.transaction) await client.query('BEGIN');
        const result = await fn(db);
        if (mode.transaction) {
          committing = true;
          await client.query('COMMIT');
        }
        client.release();
        if (db.wake.size > 0) this.wake.signal(db.wake);
        return result;
      } catch (error) {
        const lostConnection = isConnectionError(error);
        if (lostConnection || !mode.transaction) client.release(lostConnection);
        else
          await client.query('ROLLBACK').then(
            () => client.release(),
            () => client.release(true),
          );
        const unknownOutcome = lostConnection && !isUnsentError(error) && (committing || !mode.transaction);
        const retry = isTransientConflict(error) || (lostConnection && (mode.repeatable || !unknownOutcome));
        if (!retry || this.closed || performance.now() + delay > deadline) {
          throw toStoreError(
            error,
            what,
            unknownOutcome && !mode.repeatable ? 'It may or may not have been stored' : undefined,
          );
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 1_000);
      }
    }
  }

  /**
   * Runs an operation inside a transaction the caller opened (`tx`). Nothing
   * is retried: the caller's transaction is theirs to roll back. Wake-ups are
   * sent with NOTIFY inside it, so they are delivered if and only if it
   * commits (or, for a `transaction()` of ours, after we commit it).
   */
  async inCallerTx<T>(what: string, tx: unknown, fn: (db: PgSession) => Promise<T>): Promise<T> {
    if (this.closed) throw new ClosedError('the PostgreSQL store');
    if (tx instanceof pg.Pool || typeof (tx as PgQueryable | null)?.query !== 'function') {
      throw new ValidationError(
        'tx must be a pg Client or PoolClient inside a transaction (await pool.connect(), then BEGIN), not a Pool',
      );
    }
    const own = this.ownTransactions.get(tx as object);
    // Our own connections prepare statements by name; a caller's connection is not ours to fill.
    const db = new PgSession(this.ctx, tx as PgQueryable, own !== undefined, true);
    try {
      const result = await fn(db);
      if (db.wake.size > 0) {
        if (own !== undefined) for (const queue of db.wake) own.add(queue);
        else await db.rows(NOTIFY_SQL, [this.wake.channel, [...db.wake]]);
      }
      return result;
    } catch (error) {
      throw toStoreError(error, `${what} in the caller's transaction`);
    }
  }

  /**
   * Runs `fn` in a transaction on a pooled connection and passes it the
   * connection (a `pg` PoolClient) to use as `tx`. Commits when `fn` resolves.
   * When `fn` throws, the connection is destroyed rather than rolled back and
   * reused: a handler that keeps issuing queries after its timeout then fails
   * instead of writing outside the transaction, and the server rolls back.
   */
  async transaction<T>(fn: (tx: unknown) => Promise<T>): Promise<T> {
    const client = await this.connect('begin a transaction');
    const wake = new Set<string>();
    this.ownTransactions.set(client, wake);
    let stage = 'begin a transaction';
    try {
      // Purpose: open the caller's transaction; the caller's statements are planned as the server's
      // settings say, not with the store's session setting (SESSION_SQL).
      await client.query('BEGIN; SET LOCAL plan_cache_mode TO DEFAULT');
      stage = '';
      const result = await fn(client);
      stage = 'commit a transaction';
      const commit = await client.query('COMMIT');
      // COMMIT of a transaction an earlier statement aborted answers ROLLBACK instead of failing.
      if (commit.command === 'ROLLBACK') {
        throw new StoreUnavailableError(
          'the transaction was rolled back: a statement in it failed earlier (and its error was caught); nothing was committed',
        );
      }
      client.release();
      if (wake.size > 0) this.wake.signal(wake);
      return result;
    } catch (error) {
      client.release(true);
      // The caller's own errors pass through untouched; only our BEGIN/COMMIT are ours to explain.
      throw stage === '' ? error : toStoreError(error, stage);
    } finally {
      this.ownTransactions.delete(client);
    }
  }

  /** Refuses new work and closes the pool once its connections are returned. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
