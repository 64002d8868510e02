/**
 * Inspection and operation on PostgreSQL: dead letters, queue settings and
 * stats, subscriptions, `once` effects and retention. Each function runs on a
 * session the store opened: a transaction where the function says so.
 */
import type { HeaderFilter } from '../../core/header-filter.js';
import { type DeadReason, messageStateName } from '../../core/message-state.js';
import {
  applyQueueConfig,
  DEFAULT_QUEUE_CONFIG,
  type QueueConfig,
  type QueueConfigInput,
} from '../../core/queue-config.js';
import type {
  DeadLetterFilter,
  DeadLetterListParams,
  MessageRow,
  QueueInfo,
  QueueStatsRow,
  RetentionSweepResult,
  Subscription,
} from '../../store/store.js';
import { CounterDeltas, ms, type PgSession, queueRows } from './postgres-context.js';
import { lockOrderingKeys } from './postgres-keys.js';

const MESSAGE_COLUMNS = `m.id::text AS id, m.queue, m.state, m.payload, m.headers, m.attempts, m.max_attempts, m.priority,
  ${ms('m.run_at')} AS run_at, m.ordering_key, m.idempotency_key, m.correlation_id, m.causation_id,
  ${ms('m.enqueued_at')} AS enqueued_at, m.errors, m.dead_reason, ${ms('m.finished_at')} AS finished_at,
  ${ms('m.lease_expires_at')} AS lease_expires_at, q.config::text AS config`;

interface MessageRowRaw {
  id: string;
  queue: string;
  state: number;
  payload: string;
  headers: string | null;
  attempts: number;
  max_attempts: number | null;
  priority: number;
  run_at: string;
  ordering_key: string | null;
  idempotency_key: string | null;
  correlation_id: string | null;
  causation_id: string | null;
  enqueued_at: string;
  errors: string | null;
  dead_reason: string | null;
  finished_at: string | null;
  lease_expires_at: string | null;
  config: string | null;
}

const nullableMs = (value: string | null) => (value === null ? null : Number(value));

function toMessageRow(db: PgSession, r: MessageRowRaw): MessageRow {
  const id = String(r.id);
  return {
    id,
    queue: r.queue,
    state: messageStateName(Number(r.state)),
    payload: r.payload,
    headers: r.headers,
    attempts: Number(r.attempts),
    maxAttempts: r.max_attempts === null ? db.ctx.config(r.config).maxAttempts : Number(r.max_attempts),
    priority: Number(r.priority),
    runAt: Number(r.run_at),
    orderingKey: r.ordering_key,
    idempotencyKey: r.idempotency_key,
    correlationId: r.correlation_id ?? id,
    causationId: r.causation_id,
    enqueuedAt: Number(r.enqueued_at),
    errors: r.errors,
    deadReason: r.dead_reason as DeadReason | null,
    finishedAt: nullableMs(r.finished_at),
    leaseExpiresAt: nullableMs(r.lease_expires_at),
  };
}

export async function messageGet(db: PgSession, id: string): Promise<MessageRow | null> {
  const [r] = await db.rows<MessageRowRaw>(
    // Purpose: one message by id, with its queue's config. Params: $1 id. Result: the row or none.
    `SELECT ${MESSAGE_COLUMNS}
       FROM {schema}.sluice_messages m LEFT JOIN {schema}.sluice_queues q ON q.name = m.queue
      WHERE m.id = $1::int8`,
    [id],
  );
  return r === undefined ? null : toMessageRow(db, r);
}

/** SQL conditions and parameters selecting dead letters of a queue by a filter. */
function deadWhere(queue: string, filter: DeadLetterFilter): { where: string; params: unknown[] } {
  const params: unknown[] = [queue];
  const parts = ['m.queue = $1', 'm.state = 4'];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.ids !== undefined) parts.push(`m.id = ANY(${param(filter.ids)}::int8[])`);
  if (filter.reason !== undefined) parts.push(`m.dead_reason = ${param(filter.reason)}`);
  if (filter.errorContains !== undefined) parts.push(`strpos(m.last_error, ${param(filter.errorContains)}) > 0`);
  if (filter.deadAfter !== undefined) {
    parts.push(`m.finished_at >= to_timestamp(${param(filter.deadAfter)}::float8 / 1000)`);
  }
  if (filter.deadBefore !== undefined) {
    parts.push(`m.finished_at < to_timestamp(${param(filter.deadBefore)}::float8 / 1000)`);
  }
  return { where: parts.join(' AND '), params };
}

export async function deadLetterList(db: PgSession, p: DeadLetterListParams): Promise<MessageRow[]> {
  const { where, params } = deadWhere(p.queue, p.filter ?? {});
  let after = '';
  if (p.afterId !== undefined) {
    params.push(p.afterId);
    after = ` AND m.id > $${params.length}::int8`;
  }
  params.push(p.limit);
  const rows = await db.rows<MessageRowRaw>(
    // Purpose: a page of dead letters, oldest id first. Params: queue, filter values, after id, limit.
    `SELECT ${MESSAGE_COLUMNS}
       FROM {schema}.sluice_messages m LEFT JOIN {schema}.sluice_queues q ON q.name = m.queue
      WHERE ${where}${after} ORDER BY m.id LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => toMessageRow(db, r));
}

/** Puts matching dead letters back with attempts reset; in a transaction. */
export async function deadLetterRedrive(db: PgSession, queue: string, filter: DeadLetterFilter): Promise<number> {
  const { where, params } = deadWhere(queue, filter);
  const found = await db.rows<{ ordering_key: string }>(
    // Purpose: the ordering keys of the dead letters to put back, to lock them first. Params: filter values.
    `SELECT DISTINCT m.ordering_key FROM {schema}.sluice_messages m WHERE ${where} AND m.ordering_key IS NOT NULL`,
    params,
  );
  await lockOrderingKeys(
    db,
    found.map((r) => ({ queue, key: r.ordering_key })),
  );
  const rows = await db.rows<{ state: number }>(
    // Purpose: back to the queue with attempts reset (id, correlation and history kept). A keyed message
    //   waits when its key has a live message or an earlier one is redriven with it; the rest are ready.
    // Params: filter values. Result: the new state of each message put back.
    `WITH locked AS MATERIALIZED (
       SELECT m.id, m.ordering_key FROM {schema}.sluice_messages m WHERE ${where} ORDER BY m.id FOR UPDATE OF m
     ), picked AS (
       SELECT id, ordering_key, row_number() OVER (PARTITION BY ordering_key ORDER BY id) AS key_rank FROM locked
     )
     UPDATE {schema}.sluice_messages m
        SET state = CASE WHEN p.ordering_key IS NOT NULL AND (p.key_rank > 1 OR EXISTS (
                      SELECT 1 FROM {schema}.sluice_messages x
                       WHERE x.queue = m.queue AND x.ordering_key = p.ordering_key AND x.state < 4)) THEN 2
                    ELSE 0 END,
            attempts = 0, run_at = statement_timestamp(), dead_reason = NULL, finished_at = NULL
       FROM picked p WHERE m.id = p.id AND m.state = 4
     RETURNING m.state`,
    params,
  );
  if (rows.length > 0) {
    const counters = new CounterDeltas();
    counters.add(queue, rows.length, 0, 0, 0, 0);
    await counters.flush(db);
    db.wake.add(queue);
  }
  return rows.length;
}

export async function deadLetterPurge(db: PgSession, queue: string, filter: DeadLetterFilter): Promise<number> {
  const { where, params } = deadWhere(queue, filter);
  const rows = await db.rows(
    // Purpose: delete dead letters for good. Params: filter values. Result: one row per message deleted.
    `DELETE FROM {schema}.sluice_messages m WHERE ${where} RETURNING m.id`,
    params,
  );
  return rows.length;
}

interface QueueInfoRaw {
  name: string;
  config: string;
  paused: boolean;
  created_at: string;
}

const QUEUE_COLUMNS = `name, config::text AS config, paused, ${ms('created_at')} AS created_at`;

function toQueueInfo(db: PgSession, r: QueueInfoRaw): QueueInfo {
  return { name: r.name, config: db.ctx.config(r.config), paused: r.paused, createdAt: Number(r.created_at) };
}

export async function queueGet(db: PgSession, queue: string): Promise<QueueInfo | null> {
  // Purpose: one queue's settings. Params: $1 name.
  const [r] = await db.rows<QueueInfoRaw>(`SELECT ${QUEUE_COLUMNS} FROM {schema}.sluice_queues WHERE name = $1`, [
    queue,
  ]);
  return r === undefined ? null : toQueueInfo(db, r);
}

export async function queueList(db: PgSession): Promise<QueueInfo[]> {
  // Purpose: every queue, by name.
  const rows = await db.rows<QueueInfoRaw>(`SELECT ${QUEUE_COLUMNS} FROM {schema}.sluice_queues ORDER BY name`, []);
  return rows.map((r) => toQueueInfo(db, r));
}

/** Applies configuration changes; in a transaction, so concurrent changes do not overwrite each other. */
export async function queueConfigure(db: PgSession, queue: string, input: QueueConfigInput): Promise<QueueConfig> {
  await queueRows(db, [queue]);
  const [row] = await db.rows<{ config: string }>(
    // Purpose: lock a queue's row and read its config. Params: $1 name.
    'SELECT config::text AS config FROM {schema}.sluice_queues WHERE name = $1 FOR UPDATE',
    [queue],
  );
  const next = applyQueueConfig(db.ctx.config(row?.config ?? null), input);
  // Purpose: store the whole validated configuration. Params: $1 name, $2 JSON.
  await db.rows('UPDATE {schema}.sluice_queues SET config = $2::jsonb WHERE name = $1', [queue, JSON.stringify(next)]);
  // New limits may let waiting workers claim.
  db.wake.add(queue);
  return next;
}

export async function queuePause(db: PgSession, queue: string, paused: boolean): Promise<void> {
  await db.rows(
    // Purpose: pause or resume claiming, creating the queue if needed. Params: $1 name, $2 paused.
    `INSERT INTO {schema}.sluice_queues (name, paused) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`,
    [queue, paused],
  );
  if (!paused) db.wake.add(queue);
}

export async function queueStats(db: PgSession, queue: string): Promise<QueueStatsRow> {
  const [r] = await db.rows<Record<string, string | boolean | null>>(
    // Purpose: a queue's depth by state, its counters and the age of its oldest ready message, from one
    //   snapshot. Each count uses its state's partial index. Due delayed messages count as ready.
    //   The oldest ready run-at is found with one index seek per distinct priority (a loose index scan),
    //   since the ready index is ordered by priority first. Params: $1 queue. Result: one row.
    `WITH RECURSIVE oldest AS (
       (SELECT priority, run_at FROM {schema}.sluice_messages WHERE queue = $1 AND state = 0
         ORDER BY priority DESC, run_at LIMIT 1)
       UNION ALL
       SELECT next.priority, next.run_at FROM oldest o CROSS JOIN LATERAL (
         SELECT priority, run_at FROM {schema}.sluice_messages WHERE queue = $1 AND state = 0 AND priority < o.priority
          ORDER BY priority DESC, run_at LIMIT 1) AS next
     ), counters AS (
       SELECT coalesce(sum(enqueued), 0)::int8 AS enqueued, coalesce(sum(completed), 0)::int8 AS completed,
              coalesce(sum(retried), 0)::int8 AS retried, coalesce(sum(dead_lettered), 0)::int8 AS dead_lettered
         FROM {schema}.sluice_counters WHERE queue = $1
     )
     SELECT
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 0) AS ready,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 1 AND run_at <= statement_timestamp()) AS due,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 1) AS delayed,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND ordering_key IS NOT NULL AND state = 2) AS waiting,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 3) AS in_flight,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 4) AS dead,
       (SELECT count(*) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 5) AS completed_retained,
       (SELECT ${ms('least((SELECT min(run_at) FROM oldest), (SELECT min(run_at) FROM {schema}.sluice_messages WHERE queue = $1 AND state = 1 AND run_at <= statement_timestamp()))')}) AS oldest,
       ${ms('statement_timestamp()')} AS now,
       c.enqueued, c.completed, c.retried, c.dead_lettered,
       coalesce((SELECT paused FROM {schema}.sluice_queues WHERE name = $1), false) AS paused
     FROM counters c`,
    [queue],
  );
  const n = (key: string) => Number(r?.[key] ?? 0);
  const oldest = r?.oldest ?? null;
  return {
    ready: n('ready') + n('due'),
    delayed: n('delayed') - n('due'),
    waiting: n('waiting'),
    inFlight: n('in_flight'),
    dead: n('dead'),
    completedRetained: n('completed_retained'),
    oldestReadyAgeMs: oldest === null ? 0 : Math.max(0, n('now') - Number(oldest)),
    enqueued: n('enqueued'),
    completed: n('completed'),
    retried: n('retried'),
    deadLettered: n('dead_lettered'),
    paused: r?.paused === true,
  };
}

export async function subscriptionPut(db: PgSession, s: Subscription): Promise<void> {
  await queueRows(db, [s.queue]);
  await db.rows(
    // Purpose: bind a queue to a topic, or change its filter. Params: $1 topic, $2 queue, $3 filter JSON.
    `INSERT INTO {schema}.sluice_subscriptions (topic, queue, filter) VALUES ($1, $2, $3)
     ON CONFLICT (topic, queue) DO UPDATE SET filter = excluded.filter`,
    [s.topic, s.queue, JSON.stringify(s.filter)],
  );
}

export async function subscriptionDelete(db: PgSession, topic: string, queue: string): Promise<boolean> {
  const rows = await db.rows(
    // Purpose: unbind a queue from a topic. Params: $1 topic, $2 queue. Result: the row deleted, if any.
    'DELETE FROM {schema}.sluice_subscriptions WHERE topic = $1 AND queue = $2 RETURNING topic',
    [topic, queue],
  );
  return rows.length === 1;
}

export async function subscriptionList(db: PgSession, topic: string | undefined): Promise<Subscription[]> {
  const rows = await db.rows<{ topic: string; queue: string; filter: string }>(
    // Purpose: the subscriptions of a topic, or all when $1 is null. Params: $1 topic or null.
    `SELECT topic, queue, filter FROM {schema}.sluice_subscriptions
      WHERE $1::text IS NULL OR topic = $1 ORDER BY topic, queue`,
    [topic ?? null],
  );
  return rows.map((r) => ({ topic: r.topic, queue: r.queue, filter: JSON.parse(r.filter) as HeaderFilter }));
}

export async function effectGet(db: PgSession, queue: string, key: string): Promise<{ result: string } | null> {
  const [r] = await db.rows<{ result: string }>(
    // Purpose: a recorded once() result still inside its window. Params: $1 queue, $2 key.
    `SELECT result FROM {schema}.sluice_effects
      WHERE queue = $1 AND key = $2 AND expires_at > statement_timestamp()`,
    [queue, key],
  );
  return r === undefined ? null : { result: r.result };
}

export async function effectPut(db: PgSession, queue: string, key: string, result: string): Promise<void> {
  await db.rows(
    // Purpose: record a once() effect for the queue's dedup window (the default when the queue has none).
    // Params: $1 queue, $2 key, $3 result, $4 default window (ms).
    `INSERT INTO {schema}.sluice_effects (queue, key, result, expires_at)
     SELECT $1, $2, $3, statement_timestamp() + coalesce(
              (SELECT (config->>'dedupWindowMs')::int8 FROM {schema}.sluice_queues WHERE name = $1), $4::int8)
            * interval '1 millisecond'
     ON CONFLICT (queue, key) DO UPDATE SET result = excluded.result, expires_at = excluded.expires_at`,
    [queue, key, result, DEFAULT_QUEUE_CONFIG.dedupWindowMs],
  );
}

export async function retentionSweep(db: PgSession, limit: number): Promise<RetentionSweepResult> {
  let completedDeleted = 0;
  for (const q of await queueList(db)) {
    const rows = await db.rows(
      // Purpose: forget retained completions past the queue's retention. Params: $1 queue, $2 retention (ms), $3 limit.
      `DELETE FROM {schema}.sluice_messages WHERE id IN (
         SELECT id FROM {schema}.sluice_messages
          WHERE queue = $1 AND state = 5 AND finished_at <= statement_timestamp() - $2::int8 * interval '1 millisecond'
          LIMIT $3)
       RETURNING id`,
      [q.name, q.config.retentionMs, limit],
    );
    completedDeleted += rows.length;
  }
  const keys = await db.rows(
    // Purpose: forget idempotency keys past their window. Params: $1 limit.
    `DELETE FROM {schema}.sluice_idempotency_keys WHERE (queue, key) IN (
       SELECT queue, key FROM {schema}.sluice_idempotency_keys WHERE expires_at <= statement_timestamp() LIMIT $1)
     RETURNING key`,
    [limit],
  );
  const effects = await db.rows(
    // Purpose: forget once() records past their window. Params: $1 limit.
    `DELETE FROM {schema}.sluice_effects WHERE (queue, key) IN (
       SELECT queue, key FROM {schema}.sluice_effects WHERE expires_at <= statement_timestamp() LIMIT $1)
     RETURNING key`,
    [limit],
  );
  return { completedDeleted, keysExpired: keys.length, effectsExpired: effects.length };
}
