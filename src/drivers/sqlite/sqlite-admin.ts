/**
 * Inspection and operation on SQLite: dead letters, queue settings and stats,
 * subscriptions, `once` effects and retention. Run inside transactions opened
 * by SqliteStore.
 */
import type { HeaderFilter } from '../../core/header-filter.js';
import { type DeadReason, messageStateName, MessageStateCode as S } from '../../core/message-state.js';
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
import { CounterDeltas, queueRowEnsure, queueRowRead, type SqliteContext, type WakeSet } from './sqlite-context.js';

const MESSAGE_COLUMNS = `id, queue, state, payload, headers, attempts, max_attempts, priority, run_at, ordering_key,
  idempotency_key, correlation_id, causation_id, enqueued_at, errors, dead_reason, finished_at, lease_expires_at`;

type MessageRowRaw = [
  number,
  string,
  number,
  string,
  string | null,
  number,
  number | null,
  number,
  number,
  string | null,
  string | null,
  string | null,
  string | null,
  number,
  string | null,
  string | null,
  number | null,
  number | null,
];

function toMessageRow(ctx: SqliteContext, r: MessageRowRaw, configs: Map<string, QueueConfig>): MessageRow {
  let config = configs.get(r[1]);
  if (config === undefined) {
    config = queueRowRead(ctx, r[1])?.config ?? DEFAULT_QUEUE_CONFIG;
    configs.set(r[1], config);
  }
  return {
    id: String(r[0]),
    queue: r[1],
    state: messageStateName(r[2]),
    payload: r[3],
    headers: r[4],
    attempts: r[5],
    maxAttempts: r[6] ?? config.maxAttempts,
    priority: r[7],
    runAt: r[8],
    orderingKey: r[9],
    idempotencyKey: r[10],
    correlationId: r[11] ?? String(r[0]),
    causationId: r[12],
    enqueuedAt: r[13],
    errors: r[14],
    deadReason: r[15] as DeadReason | null,
    finishedAt: r[16],
    leaseExpiresAt: r[17],
  };
}

export function messageGet(ctx: SqliteContext, id: string): MessageRow | null {
  const r = ctx
    .stmt(
      // Purpose: one message by id. Params: id. Result: the row or none.
      `SELECT ${MESSAGE_COLUMNS} FROM sluice_messages WHERE id = ?`,
    )
    .raw()
    .get(Number(id)) as MessageRowRaw | undefined;
  return r === undefined ? null : toMessageRow(ctx, r, new Map());
}

/** SQL conditions and parameters selecting dead letters of a queue by a filter. */
function deadWhere(queue: string, filter: DeadLetterFilter): { where: string; params: unknown[] } {
  const parts = ['queue = ?', 'state = 4'];
  const params: unknown[] = [queue];
  if (filter.ids !== undefined) {
    // json_each turns one bound JSON array into a set, so any number of ids is one parameter.
    parts.push('id IN (SELECT value FROM json_each(?))');
    params.push(JSON.stringify(filter.ids.map(Number)));
  }
  if (filter.reason !== undefined) {
    parts.push('dead_reason = ?');
    params.push(filter.reason);
  }
  if (filter.errorContains !== undefined) {
    parts.push('instr(last_error, ?) > 0');
    params.push(filter.errorContains);
  }
  if (filter.deadAfter !== undefined) {
    parts.push('finished_at >= ?');
    params.push(filter.deadAfter);
  }
  if (filter.deadBefore !== undefined) {
    parts.push('finished_at < ?');
    params.push(filter.deadBefore);
  }
  return { where: parts.join(' AND '), params };
}

export function deadLetterList(ctx: SqliteContext, p: DeadLetterListParams): MessageRow[] {
  const { where, params } = deadWhere(p.queue, p.filter ?? {});
  const after = p.afterId === undefined ? '' : ' AND id > ?';
  if (p.afterId !== undefined) params.push(Number(p.afterId));
  params.push(p.limit);
  const rows = ctx
    .stmt(
      // Purpose: a page of dead letters, oldest id first. Params: filter values, after id, limit.
      `SELECT ${MESSAGE_COLUMNS} FROM sluice_messages WHERE ${where}${after} ORDER BY id LIMIT ?`,
    )
    .raw()
    .all(...params) as MessageRowRaw[];
  const configs = new Map<string, QueueConfig>();
  return rows.map((r) => toMessageRow(ctx, r, configs));
}

export function deadLetterRedrive(ctx: SqliteContext, queue: string, filter: DeadLetterFilter, wake: WakeSet): number {
  const now = ctx.clock.now();
  const { where, params } = deadWhere(queue, filter);
  const rows = ctx
    .stmt(
      // Purpose: dead letters to put back, oldest first. Params: filter values. Result: id, ordering key.
      `SELECT id, ordering_key FROM sluice_messages WHERE ${where} ORDER BY id`,
    )
    .raw()
    .all(...params) as [number, string | null][];
  const busy = ctx.stmt(
    // Purpose: is the ordering key held by a live message? Params: queue, key. Result: 1 or nothing.
    'SELECT 1 FROM sluice_messages WHERE queue = ? AND ordering_key = ? AND state < 4 LIMIT 1',
  );
  const put = ctx.stmt(
    // Purpose: back to the queue with attempts reset; id, correlation and history kept. Params: state, now, id.
    `UPDATE sluice_messages SET state = ?, attempts = 0, run_at = ?, dead_reason = NULL, finished_at = NULL
      WHERE id = ?`,
  );
  for (const [id, key] of rows) {
    const state = key !== null && busy.pluck().get(queue, key) !== undefined ? S.waiting : S.ready;
    put.run(state, now, id);
  }
  if (rows.length > 0) {
    const counters = new CounterDeltas();
    counters.add(queue, rows.length, 0, 0, 0, 0);
    counters.flush(ctx);
    wake.add(queue);
  }
  return rows.length;
}

export function deadLetterPurge(ctx: SqliteContext, queue: string, filter: DeadLetterFilter): number {
  const { where, params } = deadWhere(queue, filter);
  // Purpose: delete dead letters for good. Params: filter values.
  return ctx.stmt(`DELETE FROM sluice_messages WHERE ${where}`).run(...params).changes;
}

type QueueRowRaw = [string, string, number, number];

function toQueueInfo(ctx: SqliteContext, r: QueueRowRaw): QueueInfo {
  return { name: r[0], config: ctx.config(r[1]), paused: r[2] !== 0, createdAt: r[3] };
}

export function queueGet(ctx: SqliteContext, queue: string): QueueInfo | null {
  const r = ctx
    .stmt(
      // Purpose: one queue's settings. Params: name.
      'SELECT name, config, paused, created_at FROM sluice_queues WHERE name = ?',
    )
    .raw()
    .get(queue) as QueueRowRaw | undefined;
  return r === undefined ? null : toQueueInfo(ctx, r);
}

export function queueList(ctx: SqliteContext): QueueInfo[] {
  const rows = ctx
    .stmt(
      // Purpose: every queue, by name.
      'SELECT name, config, paused, created_at FROM sluice_queues ORDER BY name',
    )
    .raw()
    .all() as QueueRowRaw[];
  return rows.map((r) => toQueueInfo(ctx, r));
}

export function queueConfigure(ctx: SqliteContext, queue: string, input: QueueConfigInput, wake: WakeSet): QueueConfig {
  const now = ctx.clock.now();
  const current = queueRowEnsure(ctx, queue, now).config;
  const next = applyQueueConfig(current, input);
  // Purpose: store the whole validated configuration. Params: JSON, name.
  ctx.stmt('UPDATE sluice_queues SET config = ? WHERE name = ?').run(JSON.stringify(next), queue);
  // New limits may let waiting workers claim.
  wake.add(queue);
  return next;
}

export function queuePause(ctx: SqliteContext, queue: string, paused: boolean, wake: WakeSet): void {
  queueRowEnsure(ctx, queue, ctx.clock.now());
  // Purpose: pause or resume claiming. Params: 1 or 0, name.
  ctx.stmt('UPDATE sluice_queues SET paused = ? WHERE name = ?').run(paused ? 1 : 0, queue);
  if (!paused) wake.add(queue);
}

export function queueStats(ctx: SqliteContext, queue: string): QueueStatsRow {
  const now = ctx.clock.now();
  const counters = ctx
    .stmt(
      // Purpose: a queue's counters. Params: name.
      'SELECT paused, enqueued, completed, retried, dead_lettered FROM sluice_queues WHERE name = ?',
    )
    .raw()
    .get(queue) as [number, number, number, number, number] | undefined;
  const count = (sql: string, ...params: unknown[]) =>
    ctx
      .stmt(sql)
      .pluck()
      .get(queue, ...params) as number;
  // Purpose (each): count one state of a queue through its partial index. Params: queue[, now].
  const ready = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 0');
  const dueDelayed = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 1 AND run_at <= ?', now);
  const delayed = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 1') - dueDelayed;
  const waiting = count(
    'SELECT count(*) FROM sluice_messages WHERE queue = ? AND ordering_key IS NOT NULL AND state = 2',
  );
  const inFlight = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 3');
  const dead = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 4');
  const completedRetained = count('SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 5');
  return {
    ready: ready + dueDelayed,
    delayed,
    waiting,
    inFlight,
    dead,
    completedRetained,
    oldestReadyAgeMs: oldestReadyAge(ctx, queue, now),
    enqueued: counters?.[1] ?? 0,
    completed: counters?.[2] ?? 0,
    retried: counters?.[3] ?? 0,
    deadLettered: counters?.[4] ?? 0,
    paused: (counters?.[0] ?? 0) !== 0,
  };
}

/**
 * The earliest run-at among ready messages. The ready index is ordered by
 * priority first, so the minimum is found with one index seek per distinct
 * priority (a loose index scan) instead of reading every ready row.
 */
function oldestReadyAge(ctx: SqliteContext, queue: string, now: number): number {
  let oldest = ctx
    .stmt(
      // Purpose: earliest due delayed message. Params: queue, now. Result: run_at or null.
      'SELECT min(run_at) FROM sluice_messages WHERE queue = ? AND state = 1 AND run_at <= ?',
    )
    .pluck()
    .get(queue, now) as number | null;
  const first = ctx.stmt(
    // Purpose: the first ready message at the highest priority below a bound. Params: queue, bound.
    `SELECT priority, run_at FROM sluice_messages WHERE queue = ? AND state = 0 AND priority < ?
      ORDER BY priority DESC, run_at LIMIT 1`,
  );
  let bound = Number.MAX_SAFE_INTEGER;
  for (;;) {
    const r = first.raw().get(queue, bound) as [number, number] | undefined;
    if (r === undefined) break;
    oldest = oldest === null ? r[1] : Math.min(oldest, r[1]);
    bound = r[0];
  }
  return oldest === null ? 0 : Math.max(0, now - oldest);
}

export function subscriptionPut(ctx: SqliteContext, s: Subscription): void {
  const now = ctx.clock.now();
  queueRowEnsure(ctx, s.queue, now);
  ctx
    .stmt(
      // Purpose: bind a queue to a topic, or change its filter. Params: topic, queue, filter JSON, now.
      `INSERT INTO sluice_subscriptions (topic, queue, filter, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (topic, queue) DO UPDATE SET filter = excluded.filter`,
    )
    .run(s.topic, s.queue, JSON.stringify(s.filter), now);
}

export function subscriptionDelete(ctx: SqliteContext, topic: string, queue: string): boolean {
  // Purpose: unbind a queue from a topic. Params: topic, queue.
  return ctx.stmt('DELETE FROM sluice_subscriptions WHERE topic = ? AND queue = ?').run(topic, queue).changes === 1;
}

export function subscriptionList(ctx: SqliteContext, topic: string | undefined): Subscription[] {
  const rows = (
    topic === undefined
      ? // Purpose: every subscription.
        ctx.stmt('SELECT topic, queue, filter FROM sluice_subscriptions ORDER BY topic, queue').raw().all()
      : // Purpose: a topic's subscriptions. Params: topic.
        ctx
          .stmt('SELECT topic, queue, filter FROM sluice_subscriptions WHERE topic = ? ORDER BY queue')
          .raw()
          .all(topic)
  ) as [string, string, string][];
  return rows.map(([t, queue, filter]) => ({ topic: t, queue, filter: JSON.parse(filter) as HeaderFilter }));
}

export function effectGet(ctx: SqliteContext, queue: string, key: string): { result: string } | null {
  const result = ctx
    .stmt(
      // Purpose: a recorded once() result still inside its window. Params: queue, key, now.
      'SELECT result FROM sluice_effects WHERE queue = ? AND key = ? AND expires_at > ?',
    )
    .pluck()
    .get(queue, key, ctx.clock.now()) as string | undefined;
  return result === undefined ? null : { result };
}

export function effectPut(ctx: SqliteContext, queue: string, key: string, result: string): void {
  const now = ctx.clock.now();
  const config = queueRowEnsure(ctx, queue, now).config;
  ctx
    .stmt(
      // Purpose: record a once() effect for the queue's dedup window. Params: queue, key, result, expiry.
      'INSERT OR REPLACE INTO sluice_effects (queue, key, result, expires_at) VALUES (?, ?, ?, ?)',
    )
    .run(queue, key, result, now + config.dedupWindowMs);
}

export function retentionSweep(ctx: SqliteContext, limit: number): RetentionSweepResult {
  const now = ctx.clock.now();
  let completedDeleted = 0;
  for (const q of queueList(ctx)) {
    completedDeleted += ctx
      .stmt(
        // Purpose: forget retained completions past the queue's retention. Params: queue, cutoff, limit.
        `DELETE FROM sluice_messages WHERE id IN (
           SELECT id FROM sluice_messages WHERE queue = ? AND state = 5 AND finished_at <= ? LIMIT ?)`,
      )
      .run(q.name, now - q.config.retentionMs, limit).changes;
  }
  const keysExpired = ctx
    .stmt(
      // Purpose: forget idempotency keys past their window. Params: now, limit.
      `DELETE FROM sluice_idempotency_keys WHERE (queue, key) IN (
         SELECT queue, key FROM sluice_idempotency_keys WHERE expires_at <= ? LIMIT ?)`,
    )
    .run(now, limit).changes;
  const effectsExpired = ctx
    .stmt(
      // Purpose: forget once() records past their window. Params: now, limit.
      `DELETE FROM sluice_effects WHERE (queue, key) IN (
         SELECT queue, key FROM sluice_effects WHERE expires_at <= ? LIMIT ?)`,
    )
    .run(now, limit).changes;
  return { completedDeleted, keysExpired, effectsExpired };
}
