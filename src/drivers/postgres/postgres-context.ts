import { createHash } from 'node:crypto';
import { type QueueConfig, queueConfigFromJson } from '../../core/queue-config.js';
import { CounterDeltaSet } from '../../store/counter-deltas.js';

/**
 * Anything that runs a parameterised statement the way `pg` does: a `Client`,
 * a `PoolClient`, or another client with the same `query(text, values)` shape.
 * A caller's transaction (option `tx`) only needs this.
 */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** A `pg` client that also takes named (prepared) statements: the store's own connections. */
export interface PgPreparingClient extends PgQueryable {
  query(
    config: { name: string; text: string; values?: unknown[] } | string,
    values?: unknown[],
  ): Promise<{ rows: unknown[] }>;
}

/** SQL for "milliseconds since the epoch" of a timestamptz expression; NULL stays NULL. */
export function ms(column: string): string {
  return `floor(extract(epoch FROM ${column}) * 1000)::int8`;
}

/** Counter rows per queue; see the sluice_counters table. */
const COUNTER_SHARDS = 16;

/**
 * What every PostgreSQL operation shares for one store: the schema, rendered
 * statements, parsed queue configurations, and the names of advisory locks.
 */
export class PgContext {
  /** The schema as a quoted identifier, ready to prefix table names. */
  readonly quotedSchema: string;
  /** Queues known to have a row (created by an earlier, committed statement). */
  readonly knownQueues = new Set<string>();
  private readonly statements = new Map<string, { name: string; text: string }>();
  private readonly configs = new Map<string, QueueConfig>();

  constructor(
    readonly schema: string,
    readonly random: () => number,
  ) {
    this.quotedSchema = `"${schema}"`;
  }

  /**
   * A statement with `{schema}` replaced, and a name for preparing it once per
   * connection. The name is a hash of the final text, so two texts never share
   * a name and a statement is planned once per connection, not once per call.
   */
  statement(sql: string): { name: string; text: string } {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      const text = sql.replaceAll('{schema}', this.quotedSchema);
      const name = `sluice_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
      statement = { name, text };
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Parses a stored configuration (jsonb as text), remembering the result by its text. */
  config(text: string | null): QueueConfig {
    const key = text ?? '{}';
    let config = this.configs.get(key);
    if (config === undefined) {
      config = queueConfigFromJson(key);
      if (this.configs.size > 1000) this.configs.clear();
      this.configs.set(key, config);
    }
    return config;
  }

  /** The counter row this transaction adds to: random, so concurrent commits rarely share one. */
  shard(): number {
    return Math.floor(this.random() * COUNTER_SHARDS);
  }

  /**
   * A 64-bit advisory lock id (as decimal text, for an int8 parameter) for
   * `parts` within this schema, so two schemas in one database never share locks.
   */
  lockId(...parts: string[]): string {
    const digest = createHash('sha1').update(this.schema).update('\u0000').update(parts.join('\u0000')).digest();
    return digest.readBigInt64BE(0).toString();
  }
}

/**
 * One connection's view for one operation: the store's own pooled connection
 * (statements prepared by name) or a caller's transaction (plain statements,
 * since their connection's prepared names are not ours to fill). `wake`
 * gathers queues whose workers should be woken once the work commits.
 */
export class PgSession {
  readonly wake = new Set<string>();

  constructor(
    readonly ctx: PgContext,
    private readonly client: PgQueryable,
    private readonly prepared: boolean,
    /** True inside a transaction (ours or a caller's): nothing is visible to others until it commits. */
    readonly inTransaction: boolean,
  ) {}

  /** Runs one statement (with `{schema}` placeholders) and returns its rows. */
  async rows<R>(sql: string, values: unknown[]): Promise<R[]> {
    const statement = this.ctx.statement(sql);
    const result = this.prepared
      ? await (this.client as PgPreparingClient).query({ name: statement.name, text: statement.text, values })
      : await this.client.query(statement.text, values);
    return result.rows as R[];
  }
}

/** A queue's row: its policy and whether it is paused. */
export interface QueueRow {
  name: string;
  config: QueueConfig;
  paused: boolean;
}

type QueueRowRaw = { name: string; config: string; paused: boolean };

/**
 * Reads the rows of `names`, creating missing ones with defaults. Queues are
 * never deleted, so a name seen committed once is only read afterwards.
 */
export async function queueRows(db: PgSession, names: Iterable<string>): Promise<Map<string, QueueRow>> {
  const list = [...new Set(names)];
  const result = new Map<string, QueueRow>();
  if (list.length === 0) return result;
  const add = (rows: QueueRowRaw[]) => {
    for (const r of rows) result.set(r.name, { name: r.name, config: db.ctx.config(r.config), paused: r.paused });
  };
  if (list.some((name) => !db.ctx.knownQueues.has(name))) {
    add(
      await db.rows<QueueRowRaw>(
        // Purpose: create missing queues with the default policy and read every named queue.
        // Params: $1 names. Result: name, config (text), paused, one row per queue.
        // The two halves never overlap: the SELECT's snapshot predates the INSERT's rows.
        `WITH created AS (
           INSERT INTO {schema}.sluice_queues (name) SELECT unnest($1::text[])
           ON CONFLICT (name) DO NOTHING
           RETURNING name, config::text AS config, paused
         )
         SELECT name, config, paused FROM created
         UNION ALL
         SELECT name, config::text, paused FROM {schema}.sluice_queues WHERE name = ANY($1::text[])`,
        [list],
      ),
    );
  }
  const missing = list.filter((name) => !result.has(name));
  if (missing.length > 0) {
    // Either all known, or created by a concurrent transaction that committed
    // while the statement above waited on it (invisible to its snapshot).
    add(
      await db.rows<QueueRowRaw>(
        // Purpose: read queues' policies. Params: $1 names. Result: name, config (text), paused.
        'SELECT name, config::text AS config, paused FROM {schema}.sluice_queues WHERE name = ANY($1::text[])',
        [missing],
      ),
    );
  }
  // Only remember rows that others can see: a caller's transaction may still roll back.
  if (!db.inTransaction) for (const name of result.keys()) db.ctx.knownQueues.add(name);
  return result;
}

/** Per-queue counter changes gathered during an operation and written in one statement. */
export class CounterDeltas extends CounterDeltaSet {
  /** Adds the gathered changes to one counter shard per queue. */
  async flush(db: PgSession): Promise<void> {
    const deltas = this.take();
    if (deltas.length === 0) return;
    await db.rows(
      // Purpose: add counter changes to one shard row per queue, in queue order (a fixed lock order).
      // Params: $1 queues, $2 shard, $3..$7 depth, enqueued, completed, retried, dead-lettered deltas.
      `INSERT INTO {schema}.sluice_counters AS c (queue, shard, depth, enqueued, completed, retried, dead_lettered)
       SELECT d.queue, $2, d.depth, d.enqueued, d.completed, d.retried, d.dead
         FROM unnest($1::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
              AS d(queue, depth, enqueued, completed, retried, dead)
        ORDER BY d.queue
       ON CONFLICT (queue, shard) DO UPDATE SET
         depth = c.depth + excluded.depth, enqueued = c.enqueued + excluded.enqueued,
         completed = c.completed + excluded.completed, retried = c.retried + excluded.retried,
         dead_lettered = c.dead_lettered + excluded.dead_lettered`,
      [
        deltas.map((d) => d.queue),
        db.ctx.shard(),
        deltas.map((d) => d.depth),
        deltas.map((d) => d.enqueued),
        deltas.map((d) => d.completed),
        deltas.map((d) => d.retried),
        deltas.map((d) => d.deadLettered),
      ],
    );
  }
}
