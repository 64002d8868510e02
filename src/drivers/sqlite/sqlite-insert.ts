/**
 * Sending on SQLite: idempotency, maxDepth, per-key ordering and fan-out,
 * inside the caller's BEGIN IMMEDIATE transaction. SQLite serialises writers
 * across processes, which is what makes these read-then-write steps race-free
 * without row locks.
 */
import type { HeaderFilter } from '../../core/header-filter.js';
import { matchesHeaderFilter } from '../../core/header-filter.js';
import { MessageStateCode as S } from '../../core/message-state.js';
import type { InsertedMessage, InsertUnit, InsertUnitResult, NewMessage } from '../../store/store.js';
import {
  CounterDeltas,
  type QueueRowLite,
  queueRowEnsure,
  type SqliteContext,
  type WakeSet,
} from './sqlite-context.js';

/** How long a full queue suggests waiting before trying again. */
const FULL_RETRY_AFTER_MS = 1_000;

export function insertUnits(ctx: SqliteContext, units: InsertUnit[], wake: WakeSet): InsertUnitResult[] {
  const now = ctx.clock.now();
  const queues = new Map<string, QueueRowLite>();
  const counters = new CounterDeltas();
  const topics = new Map<string, { queue: string; filter: HeaderFilter }[]>();
  const results = units.map((unit) => insertUnit(ctx, unit, now, queues, topics, counters, wake));
  counters.flush(ctx);
  return results;
}

function insertUnit(
  ctx: SqliteContext,
  unit: InsertUnit,
  now: number,
  queues: Map<string, QueueRowLite>,
  topics: Map<string, { queue: string; filter: HeaderFilter }[]>,
  counters: CounterDeltas,
  wake: WakeSet,
): InsertUnitResult {
  const messages = unit.kind === 'send' ? unit.messages : fanOut(ctx, unit.topic, unit.message, topics);
  const rows = new Map<string, QueueRowLite>();
  for (const m of messages) {
    let q = queues.get(m.queue);
    if (q === undefined) {
      q = queueRowEnsure(ctx, m.queue, now);
      queues.set(m.queue, q);
    }
    rows.set(m.queue, q);
  }

  // Duplicates first: they store nothing and do not count against maxDepth.
  const duplicateOf: (string | null)[] = messages.map(() => null);
  const seen = new Map<string, number>();
  messages.forEach((m, i) => {
    const q = rows.get(m.queue) as QueueRowLite;
    if (m.idempotencyKey === null || q.config.dedupWindowMs === 0) return;
    const unitKey = `${m.queue}\u0000${m.idempotencyKey}`;
    const earlier = seen.get(unitKey);
    if (earlier !== undefined) {
      duplicateOf[i] = `#${earlier}`;
      return;
    }
    seen.set(unitKey, i);
    const existing = ctx
      .stmt(
        // Purpose: find an idempotency key still inside its window. Params: queue, key, now. Result: message id.
        'SELECT message_id FROM sluice_idempotency_keys WHERE queue = ? AND key = ? AND expires_at > ?',
      )
      .pluck()
      .get(m.queue, m.idempotencyKey, now) as number | undefined;
    if (existing !== undefined) duplicateOf[i] = String(existing);
  });

  const fresh = new Map<string, number>();
  messages.forEach((m, i) => {
    if (duplicateOf[i] === null) fresh.set(m.queue, (fresh.get(m.queue) ?? 0) + 1);
  });
  for (const [queue, count] of fresh) {
    const q = rows.get(queue) as QueueRowLite;
    if (q.config.maxDepth !== null && q.depth + count > q.config.maxDepth) {
      return { ok: false, full: { queue, maxDepth: q.config.maxDepth, retryAfterMs: FULL_RETRY_AFTER_MS } };
    }
  }

  const inserted: InsertedMessage[] = [];
  messages.forEach((m, i) => {
    const dup = duplicateOf[i] as string | null;
    if (dup !== null) {
      const id = dup.startsWith('#') ? (inserted[Number(dup.slice(1))] as InsertedMessage).id : dup;
      inserted.push({ id, queue: m.queue, duplicate: true });
      return;
    }
    const q = rows.get(m.queue) as QueueRowLite;
    const id = insertMessage(ctx, m, now, q, wake);
    counters.add(m.queue, 1, 1, 0, 0, 0);
    q.depth += 1;
    inserted.push({ id, queue: m.queue, duplicate: false });
  });
  return { ok: true, messages: inserted };
}

function fanOut(
  ctx: SqliteContext,
  topic: string,
  message: Omit<NewMessage, 'queue'>,
  topics: Map<string, { queue: string; filter: HeaderFilter }[]>,
): NewMessage[] {
  let subscriptions = topics.get(topic);
  if (subscriptions === undefined) {
    const rows = ctx
      .stmt(
        // Purpose: the queues bound to a topic. Params: topic. Result: queue, filter JSON, in queue order.
        'SELECT queue, filter FROM sluice_subscriptions WHERE topic = ? ORDER BY queue',
      )
      .raw()
      .all(topic) as [string, string][];
    subscriptions = rows.map(([queue, filter]) => ({ queue, filter: JSON.parse(filter) as HeaderFilter }));
    topics.set(topic, subscriptions);
  }
  const headers = message.headers === null ? null : (JSON.parse(message.headers) as Record<string, string>);
  return subscriptions
    .filter((s) => matchesHeaderFilter(s.filter, headers))
    .map((s) => ({ ...message, queue: s.queue }));
}

function insertMessage(ctx: SqliteContext, m: NewMessage, now: number, q: QueueRowLite, wake: WakeSet): string {
  const runAt = m.runAt ?? now + m.delayMs;
  let state: number = runAt > now ? S.delayed : S.ready;
  if (m.orderingKey !== null && keyBusy(ctx, m.queue, m.orderingKey)) state = S.waiting;
  const info = ctx
    .stmt(
      // Purpose: store a new message. Params: the columns listed. Result: its rowid (the message id).
      `INSERT INTO sluice_messages (queue, state, priority, run_at, payload, headers, max_attempts, backoff,
         ordering_key, idempotency_key, correlation_id, causation_id, enqueued_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      m.queue,
      state,
      m.priority,
      runAt,
      m.payload,
      m.headers,
      m.maxAttempts,
      m.backoff,
      m.orderingKey,
      m.idempotencyKey,
      m.correlationId,
      m.causationId,
      now,
    );
  const id = Number(info.lastInsertRowid);
  if (m.idempotencyKey !== null && q.config.dedupWindowMs > 0) {
    ctx
      .stmt(
        // Purpose: remember the key for the dedup window; replaces an expired entry. Params: queue, key, id, expiry.
        'INSERT OR REPLACE INTO sluice_idempotency_keys (queue, key, message_id, expires_at) VALUES (?, ?, ?, ?)',
      )
      .run(m.queue, m.idempotencyKey, id, now + q.config.dedupWindowMs);
  }
  if (state !== S.waiting) wake.add(m.queue);
  return String(id);
}

/** True when a message with this ordering key is live (not dead, not completed) in the queue. */
function keyBusy(ctx: SqliteContext, queue: string, key: string): boolean {
  return (
    ctx
      .stmt(
        // Purpose: is the ordering key held? Params: queue, key. Result: 1 or nothing.
        'SELECT 1 FROM sluice_messages WHERE queue = ? AND ordering_key = ? AND state < 4 LIMIT 1',
      )
      .pluck()
      .get(queue, key) !== undefined
  );
}
