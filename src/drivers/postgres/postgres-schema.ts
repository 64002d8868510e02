/**
 * PostgreSQL migrations, numbered and append-only: a landed migration is never
 * edited; a change is a new entry. `{schema}` stands for the quoted schema
 * name. `sluice_migrations` records what was applied; PostgresStore applies
 * them under a session advisory lock, so any number of processes may open the
 * same schema at once and each migration runs exactly once.
 *
 * Message states are the integers of MessageStateCode: 0 ready, 1 delayed,
 * 2 waiting (its ordering key is busy), 3 in flight, 4 dead, 5 completed
 * (retained). Times are `timestamptz` read from the database's clock; they
 * cross the Store boundary as milliseconds since the epoch.
 */
import { SchemaTooNewError, ValidationError } from '../../errors.js';
import type { PgContext, PgQueryable } from './postgres-context.js';

/**
 * Schema names: lower-case letters, digits and `_`, starting with a letter or
 * `_`, short enough that the wake-up channel `<schema>.wake` stays within
 * PostgreSQL's 63-byte identifier limit.
 */
export const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,57}$/;

/** Throws unless `schema` is a valid schema name; returns it. */
export function checkSchemaName(schema: unknown): string {
  if (typeof schema !== 'string' || !SCHEMA_PATTERN.test(schema)) {
    throw new ValidationError(
      `schema ${JSON.stringify(schema)} is not valid: use 1 to 58 lower-case letters, digits or "_", starting with a letter or "_"`,
    );
  }
  return schema;
}

/** Created before any numbered migration, so the version can be read. */
export const MIGRATIONS_TABLE_SQL = `
  CREATE SCHEMA IF NOT EXISTS {schema};
  CREATE TABLE IF NOT EXISTS {schema}.sluice_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT statement_timestamp()
  );`;

export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: the whole first schema.
  `
  CREATE TABLE {schema}.sluice_queues (
    name              text PRIMARY KEY,
    config            jsonb NOT NULL DEFAULT '{}',  -- options set by configure; defaults fill the rest
    paused            boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT statement_timestamp(),
    rate_window_start timestamptz NOT NULL DEFAULT 'epoch',
    rate_window_count integer NOT NULL DEFAULT 0
  );

  -- Counters are sharded: every settle and send adds to one of a few rows per
  -- queue, picked at random, and readers sum them. A single row per queue
  -- would make every committing transaction of a busy queue wait on its lock.
  -- A low fillfactor leaves room for HOT updates, so the churn stays in-page.
  CREATE TABLE {schema}.sluice_counters (
    queue         text NOT NULL,
    shard         smallint NOT NULL,
    depth         bigint NOT NULL DEFAULT 0,  -- messages not yet done: ready, delayed, waiting, in flight
    enqueued      bigint NOT NULL DEFAULT 0,
    completed     bigint NOT NULL DEFAULT 0,
    retried       bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, shard)
  ) WITH (fillfactor = 50);

  -- GENERATED ALWAYS so ids only come from the sequence, which never reuses
  -- one: ids are handed to callers, idempotency keys and logs.
  CREATE TABLE {schema}.sluice_messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL,
    state            smallint NOT NULL,
    priority         integer NOT NULL,
    run_at           timestamptz NOT NULL,
    payload          text NOT NULL,  -- JSON text, kept byte for byte (jsonb would reorder keys)
    headers          text,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer,
    backoff          text,
    ordering_key     text,
    idempotency_key  text,
    correlation_id   text,
    causation_id     text,
    enqueued_at      timestamptz NOT NULL,
    lease_token      text,
    lease_expires_at timestamptz,
    last_error       text,
    errors           text,
    dead_reason      text,
    finished_at      timestamptz
  ) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

  -- Claim order: priority, then run-at, then id; only ready rows are indexed.
  CREATE INDEX sluice_messages_ready ON {schema}.sluice_messages (queue, priority DESC, run_at, id) WHERE state = 0;
  -- Delayed rows in due order: claims take due ones directly, and the next run-at is one seek.
  CREATE INDEX sluice_messages_delayed ON {schema}.sluice_messages (queue, run_at, id) WHERE state = 1;
  CREATE INDEX sluice_messages_in_flight ON {schema}.sluice_messages (queue, lease_expires_at) WHERE state = 3;
  -- Expired leases across every queue, for the rescue sweep.
  CREATE INDEX sluice_messages_lease_expiry ON {schema}.sluice_messages (lease_expires_at) WHERE state = 3;
  -- Live messages per ordering key, in send order: "is the key busy" and "who is next".
  CREATE INDEX sluice_messages_key ON {schema}.sluice_messages (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state < 4;
  CREATE INDEX sluice_messages_dead ON {schema}.sluice_messages (queue, id) WHERE state = 4;
  CREATE INDEX sluice_messages_completed ON {schema}.sluice_messages (queue, finished_at) WHERE state = 5;

  CREATE TABLE {schema}.sluice_idempotency_keys (
    queue      text NOT NULL,
    key        text NOT NULL,
    message_id bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (queue, key)
  );
  CREATE INDEX sluice_idempotency_keys_expiry ON {schema}.sluice_idempotency_keys (expires_at);

  CREATE TABLE {schema}.sluice_subscriptions (
    topic      text NOT NULL,
    queue      text NOT NULL,
    filter     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    PRIMARY KEY (topic, queue)
  );

  CREATE TABLE {schema}.sluice_effects (
    queue      text NOT NULL,
    key        text NOT NULL,
    result     text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (queue, key)
  );
  CREATE INDEX sluice_effects_expiry ON {schema}.sluice_effects (expires_at);
  `,
  // 2: one index for leased messages instead of two. Every claim inserted an entry into each; the
  // rescue sweep's search for expired leases across all queues now scans sluice_messages_in_flight
  // instead, whose size is bounded by the messages leased at once.
  `
  DROP INDEX {schema}.sluice_messages_lease_expiry;
  `,
];

/**
 * Brings a schema up to date on one connection. Usually every migration is in
 * already: one read, no lock. Otherwise it takes a session advisory lock (so
 * processes opening at once apply each migration exactly once), creates the
 * schema and the migrations table if needed, and applies what is missing,
 * each migration in its own transaction. The caller discards the connection
 * if this throws.
 */
export async function applyMigrations(client: PgQueryable, ctx: PgContext): Promise<void> {
  const known = POSTGRES_MIGRATIONS.length;
  // Purpose: the schema's migration version. Result: one row; fails when the table is missing.
  const versionSql = ctx.statement('SELECT coalesce(max(version), 0)::int AS version FROM {schema}.sluice_migrations');
  const read = async () => Number(((await client.query(versionSql.text)).rows[0] as { version: number }).version);
  const current = await read().catch(() => 0);
  if (current > known) throw new SchemaTooNewError(current, known);
  if (current === known) return;
  const lock = [ctx.lockId('migrate')];
  // Purpose: one migrator per schema at a time, for this session. Params: $1 the schema's migration lock id.
  await client.query('SELECT pg_advisory_lock($1::int8)', lock);
  try {
    await client.query(ctx.statement(MIGRATIONS_TABLE_SQL).text);
    const version = await read();
    if (version > known) throw new SchemaTooNewError(version, known);
    for (let v = version; v < known; v++) {
      await client.query('BEGIN');
      await client.query(ctx.statement(POSTGRES_MIGRATIONS[v] as string).text);
      // Purpose: record a migration as applied. Params: $1 its number.
      await client.query(ctx.statement('INSERT INTO {schema}.sluice_migrations (version) VALUES ($1)').text, [v + 1]);
      await client.query('COMMIT');
    }
  } finally {
    // Purpose: let the next migrator in. Params: $1 the same lock id.
    await client.query('SELECT pg_advisory_unlock($1::int8)', lock).catch(() => undefined);
  }
}
