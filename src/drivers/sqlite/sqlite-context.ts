import type Database from 'better-sqlite3';
import type { Clock } from '../../core/clock.js';
import { type QueueConfig, queueConfigFromJson } from '../../core/queue-config.js';
import { CounterDeltaSet } from '../../store/counter-deltas.js';
import type { SqliteWake } from './sqlite-wake.js';

/** Queues whose workers should be woken once the transaction commits. */
export type WakeSet = Set<string>;

/** What every SQLite operation needs: the connection, its statements, the clock. */
export class SqliteContext {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly configs = new Map<string, QueueConfig>();
  /** Queues known to have a row; queues are never deleted, so this only grows. */
  readonly knownQueues = new Set<string>();

  constructor(
    readonly db: Database.Database,
    readonly clock: Clock,
    readonly wake: SqliteWake,
    readonly random: () => number,
  ) {}

  /** A prepared statement, prepared once per connection. */
  stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Parses a stored configuration, remembering the result by its text. */
  config(text: string): QueueConfig {
    let config = this.configs.get(text);
    if (config === undefined) {
      config = queueConfigFromJson(text);
      if (this.configs.size > 1000) this.configs.clear();
      this.configs.set(text, config);
    }
    return config;
  }
}

/** The columns of sluice_queues an operation needs, read once per transaction. */
export interface QueueRowLite {
  name: string;
  config: QueueConfig;
  paused: boolean;
  depth: number;
  rateWindowStart: number;
  rateWindowCount: number;
}

/**
 * Reads a queue's row, creating it with defaults when missing.
 * Params: queue name. Result: the row.
 */
export function queueRowEnsure(ctx: SqliteContext, queue: string, now: number): QueueRowLite {
  const known = ctx.knownQueues.has(queue) ? queueRowRead(ctx, queue) : null;
  if (known !== null) return known;
  // Purpose: create the queue on first use; its defaults are the empty config. Params: name, now.
  ctx.stmt('INSERT OR IGNORE INTO sluice_queues (name, created_at) VALUES (?, ?)').run(queue, now);
  ctx.knownQueues.add(queue);
  return queueRowRead(ctx, queue) as QueueRowLite;
}

/** Reads a queue's row, or null if the queue was never used. */
export function queueRowRead(ctx: SqliteContext, queue: string): QueueRowLite | null {
  const row = ctx
    .stmt(
      // Purpose: a queue's policy and live state. Params: name. Result: one row or none.
      `SELECT name, config, paused, depth, rate_window_start, rate_window_count
         FROM sluice_queues WHERE name = ?`,
    )
    .raw()
    .get(queue) as [string, string, number, number, number, number] | undefined;
  if (row === undefined) return null;
  return {
    name: row[0],
    config: ctx.config(row[1]),
    paused: row[2] !== 0,
    depth: row[3],
    rateWindowStart: row[4],
    rateWindowCount: row[5],
  };
}

/** Per-queue counter changes gathered during a transaction and written once at its end. */
export class CounterDeltas extends CounterDeltaSet {
  /** Adds the gathered changes to the queue rows. */
  flush(ctx: SqliteContext): void {
    const deltas = this.take();
    if (deltas.length === 0) return;
    const update = ctx.stmt(
      // Purpose: apply counter changes. Params: depth, enqueued, completed, retried, dead_lettered deltas, name.
      `UPDATE sluice_queues SET depth = depth + ?, enqueued = enqueued + ?, completed = completed + ?,
              retried = retried + ?, dead_lettered = dead_lettered + ? WHERE name = ?`,
    );
    for (const d of deltas) update.run(d.depth, d.enqueued, d.completed, d.retried, d.deadLettered, d.queue);
  }
}
