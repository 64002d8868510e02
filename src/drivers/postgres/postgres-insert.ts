/**
 * Sending on PostgreSQL.
 *
 * Plain sends (no ordering key, no idempotency key) first try `insertPlain`:
 * one INSERT ... SELECT FROM unnest(...) for the whole batch, counted in the
 * same statement, without BEGIN/COMMIT and without reading any policy first;
 * it inserts nothing when a queue does not exist yet or has a maxDepth.
 *
 * Everything else takes two phases. `prepareInsert` reads what the decision
 * needs (subscriptions of published topics, and the queues' policies,
 * creating missing queues) outside any transaction. `writeInsert` then takes
 * the ordering-key and depth locks it needs, decides each unit (duplicates,
 * maxDepth), and stores the accepted messages with the same one-statement
 * insert; the store runs it in a transaction when it takes locks or more than
 * one statement.
 *
 * Idempotency keys are claimed with INSERT ... ON CONFLICT after the messages
 * are inserted: when another transaction recorded the same key first (a race
 * the pre-check could not see), this one's copy is deleted again and the
 * caller gets the winner's id, flagged duplicate.
 */
import type { HeaderFilter } from '../../core/header-filter.js';
import { matchesHeaderFilter } from '../../core/header-filter.js';
import type { InsertUnit, InsertUnitResult, NewMessage } from '../../store/store.js';
import { CounterDeltas, type PgSession, type QueueRow, queueRows } from './postgres-context.js';
import { depthLockId, orderingKeyLockId, promoteNextOfKeys, takeLocks } from './postgres-keys.js';

/** How long a full queue suggests waiting before trying again. */
const FULL_RETRY_AFTER_MS = 1_000;

/** A batch of units with publishes fanned out and the queues' policies read. */
export interface InsertPlan {
  units: NewMessage[][];
  queues: Map<string, QueueRow>;
  /** True when the write takes locks or several statements, so it needs a transaction. */
  needsTransaction: boolean;
}

/** Reads subscriptions and queue policies for a batch. */
export async function prepareInsert(db: PgSession, units: InsertUnit[]): Promise<InsertPlan> {
  const topics = [...new Set(units.flatMap((u) => (u.kind === 'publish' ? [u.topic] : [])))];
  const subscriptions = new Map<string, { queue: string; filter: HeaderFilter }[]>();
  if (topics.length > 0) {
    const rows = await db.rows<{ topic: string; queue: string; filter: string }>(
      // Purpose: the queues bound to some topics. Params: $1 topics. Result: topic, queue, filter JSON, in queue order.
      'SELECT topic, queue, filter FROM {schema}.sluice_subscriptions WHERE topic = ANY($1::text[]) ORDER BY topic, queue',
      [topics],
    );
    for (const r of rows) {
      const list = subscriptions.get(r.topic) ?? [];
      list.push({ queue: r.queue, filter: JSON.parse(r.filter) as HeaderFilter });
      subscriptions.set(r.topic, list);
    }
  }
  const expanded = units.map((unit): NewMessage[] => {
    if (unit.kind === 'send') return unit.messages;
    const headers = unit.message.headers === null ? null : (JSON.parse(unit.message.headers) as Record<string, string>);
    return (subscriptions.get(unit.topic) ?? [])
      .filter((s) => matchesHeaderFilter(s.filter, headers))
      .map((s) => ({ ...unit.message, queue: s.queue }));
  });
  const queues = await queueRows(
    db,
    expanded.flatMap((messages) => messages.map((m) => m.queue)),
  );
  const needsTransaction = expanded.some((messages) =>
    messages.some((m) => {
      const config = (queues.get(m.queue) as QueueRow).config;
      return (
        m.orderingKey !== null || (m.idempotencyKey !== null && config.dedupWindowMs > 0) || config.maxDepth !== null
      );
    }),
  );
  return { units: expanded, queues, needsTransaction };
}

/** A message this batch will insert. */
interface Row {
  message: NewMessage;
  /** The dedup window when the message records an idempotency key. */
  windowMs: number | null;
  /** Assigned by the insert. */
  id: string;
  /** Set when another transaction recorded the idempotency key first. */
  lostTo: string | null;
}

/** One message of a unit's result: a row of this batch, or an earlier message's id. */
type Slot = { row: Row; duplicate: boolean } | { id: string };

/** Stores the batch planned by `prepareInsert`; runs in a transaction when `plan.needsTransaction`. */
export async function writeInsert(db: PgSession, plan: InsertPlan): Promise<InsertUnitResult[]> {
  const { queues } = plan;
  const all = plan.units.flat();
  const keyed = all.filter((m) => m.idempotencyKey !== null && config(m).dedupWindowMs > 0);
  const bounded = [...new Set(all.filter((m) => config(m).maxDepth !== null).map((m) => m.queue))];
  function config(m: NewMessage) {
    return (queues.get(m.queue) as QueueRow).config;
  }

  // Ordering-key and depth locks, all in one ascending order.
  const ordered = all.filter((m) => m.orderingKey !== null);
  if (ordered.length > 0 || bounded.length > 0) {
    await takeLocks(db, [
      ...ordered.map((m) => orderingKeyLockId(db.ctx, m.queue, m.orderingKey as string)),
      ...bounded.map((q) => depthLockId(db.ctx, q)),
    ]);
  }

  const existing = new Map<string, string>();
  if (keyed.length > 0) {
    const rows = await db.rows<{ queue: string; key: string; message_id: string }>(
      // Purpose: idempotency keys still inside their window. Params: $1 queues, $2 keys.
      // Result: queue, key, message id of each key already recorded.
      `SELECT k.queue, k.key, k.message_id::text AS message_id
         FROM {schema}.sluice_idempotency_keys k
         JOIN unnest($1::text[], $2::text[]) AS t(queue, key) ON k.queue = t.queue AND k.key = t.key
        WHERE k.expires_at > statement_timestamp()`,
      [keyed.map((m) => m.queue), keyed.map((m) => m.idempotencyKey)],
    );
    for (const r of rows) existing.set(`${r.queue}\u0000${r.key}`, String(r.message_id));
  }

  const depth = new Map<string, number>();
  if (bounded.length > 0) {
    const rows = await db.rows<{ queue: string; depth: string }>(
      // Purpose: messages not yet done per queue, summed over counter shards. Params: $1 queues.
      // Result: queue, depth. Exact here: inserters of these queues hold their depth locks.
      `SELECT queue, sum(depth)::int8 AS depth FROM {schema}.sluice_counters
        WHERE queue = ANY($1::text[]) GROUP BY queue`,
      [bounded],
    );
    for (const r of rows) depth.set(r.queue, Number(r.depth));
  }

  // Decide each unit in order, as if inserted one after another.
  const rows: Row[] = [];
  const recorded = new Map<string, Row>();
  const decided = plan.units.map((messages): Slot[] | InsertUnitResult => {
    const slots: Slot[] = [];
    const mine = new Map<string, Row>();
    const fresh = new Map<string, number>();
    const pending: Row[] = [];
    for (const m of messages) {
      const c = config(m);
      if (m.idempotencyKey !== null && c.dedupWindowMs > 0) {
        const key = `${m.queue}\u0000${m.idempotencyKey}`;
        const earlier = mine.get(key) ?? recorded.get(key);
        if (earlier !== undefined) {
          slots.push({ row: earlier, duplicate: true });
          continue;
        }
        const id = existing.get(key);
        if (id !== undefined) {
          slots.push({ id });
          continue;
        }
        const row: Row = { message: m, windowMs: c.dedupWindowMs, id: '', lostTo: null };
        mine.set(key, row);
        pending.push(row);
        slots.push({ row, duplicate: false });
      } else {
        const row: Row = { message: m, windowMs: null, id: '', lostTo: null };
        pending.push(row);
        slots.push({ row, duplicate: false });
      }
      fresh.set(m.queue, (fresh.get(m.queue) ?? 0) + 1);
    }
    for (const [queue, count] of fresh) {
      const maxDepth = (queues.get(queue) as QueueRow).config.maxDepth;
      if (maxDepth !== null && (depth.get(queue) ?? 0) + count > maxDepth) {
        return { ok: false, full: { queue, maxDepth, retryAfterMs: FULL_RETRY_AFTER_MS } };
      }
    }
    for (const [queue, count] of fresh) depth.set(queue, (depth.get(queue) ?? 0) + count);
    for (const [key, row] of mine) recorded.set(key, row);
    rows.push(...pending);
    return slots;
  });

  // In a transaction, counter rows are locked last (see postgres-settle.ts for the lock order);
  // a lone insert statement counts its rows itself.
  const counters = db.inTransaction ? new CounterDeltas() : null;
  if (rows.length > 0) await insertRows(db, rows, counters);
  if (keyed.length > 0) await recordIdempotencyKeys(db, rows, counters as CounterDeltas);
  await counters?.flush(db);

  return decided.map((slots, u): InsertUnitResult => {
    if (!Array.isArray(slots)) return slots;
    const messages = plan.units[u] as NewMessage[];
    return {
      ok: true,
      messages: slots.map((slot, i) => {
        const queue = (messages[i] as NewMessage).queue;
        if (!('row' in slot)) return { id: slot.id, queue, duplicate: true };
        const lost = slot.row.lostTo !== null;
        return { id: lost ? (slot.row.lostTo as string) : slot.row.id, queue, duplicate: slot.duplicate || lost };
      }),
    };
  });
}

/** Inserts the rows in order with one statement, fills in their ids, and counts them (in `counters`, or in the statement). */
async function insertRows(db: PgSession, rows: Row[], counters: CounterDeltas | null): Promise<void> {
  const col = <T>(f: (m: NewMessage) => T) => rows.map((r) => f(r.message));
  const inserted = await db.rows<{ id: string; queue: string; state: number }>(
    // Purpose: store new messages in the given order and count them. A message whose ordering key
    //   already has a live message (or an earlier one in this batch) waits; one whose run-at is
    //   ahead is delayed; the rest are ready.
    // Params: $1 queues, $2 payloads, $3 headers, $4 priorities, $5 delays (ms), $6 run-ats (ms, or null
    //   for now + delay), $7 max attempts, $8 backoffs, $9 ordering keys, $10 idempotency keys,
    //   $11 correlation ids, $12 causation ids, $13 counter shard (null: not counted here).
    // Result: id, queue, state per message, in id order, which is the input order (ids are drawn in it).
    `WITH src AS (
       SELECT s.*,
              CASE WHEN s.run_at_ms IS NULL THEN statement_timestamp() + s.delay_ms * interval '1 millisecond'
                   ELSE to_timestamp(s.run_at_ms::float8 / 1000) END AS run_at,
              row_number() OVER (PARTITION BY s.queue, s.okey ORDER BY s.ord) AS key_rank
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int8[], $6::int8[], $7::int[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[])
              WITH ORDINALITY AS s(queue, payload, headers, priority, delay_ms, run_at_ms, max_attempts, backoff,
                                   okey, ikey, correlation_id, causation_id, ord)
     ), ins AS (
       INSERT INTO {schema}.sluice_messages (queue, state, priority, run_at, payload, headers, max_attempts, backoff,
                                             ordering_key, idempotency_key, correlation_id, causation_id, enqueued_at)
       SELECT queue,
              CASE WHEN okey IS NOT NULL AND (key_rank > 1 OR EXISTS (
                     SELECT 1 FROM {schema}.sluice_messages x
                      WHERE x.queue = src.queue AND x.ordering_key = src.okey AND x.state < 4)) THEN 2
                   WHEN run_at > statement_timestamp() THEN 1
                   ELSE 0 END,
              priority, run_at, payload, headers, max_attempts, backoff, okey, ikey, correlation_id, causation_id,
              statement_timestamp()
         FROM src ORDER BY ord
       RETURNING id, queue, state
     ), counted AS (
       INSERT INTO {schema}.sluice_counters AS c (queue, shard, depth, enqueued)
       SELECT queue, $13::int2, count(*), count(*) FROM ins WHERE $13::int2 IS NOT NULL GROUP BY queue ORDER BY queue
       ON CONFLICT (queue, shard) DO UPDATE SET depth = c.depth + excluded.depth, enqueued = c.enqueued + excluded.enqueued
     )
     SELECT ins.id::text AS id, ins.queue, ins.state FROM ins ORDER BY ins.id`,
    [
      col((m) => m.queue),
      col((m) => m.payload),
      col((m) => m.headers),
      col((m) => m.priority),
      col((m) => m.delayMs),
      col((m) => m.runAt),
      col((m) => m.maxAttempts),
      col((m) => m.backoff),
      col((m) => m.orderingKey),
      col((m) => m.idempotencyKey),
      col((m) => m.correlationId),
      col((m) => m.causationId),
      counters === null ? db.ctx.shard() : null,
    ],
  );
  inserted.forEach((r, i) => {
    (rows[i] as Row).id = String(r.id);
    counters?.add(r.queue, 1, 1, 0, 0, 0);
    // A waiting message becomes claimable only when its key's head settles; that wakes then.
    if (Number(r.state) !== 2) db.wake.add(r.queue);
  });
}

/**
 * True when a batch may take the one-statement path: plain sends with no
 * ordering key and no idempotency key (whose handling depends on the queue).
 */
export function isPlainBatch(units: InsertUnit[]): boolean {
  return units.every(
    (u) => u.kind === 'send' && u.messages.every((m) => m.orderingKey === null && m.idempotencyKey === null),
  );
}

/**
 * The one-statement path for a plain batch, without BEGIN/COMMIT: reads no
 * policy first, and inserts everything, or nothing when a queue does not
 * exist yet or has a maxDepth. Returns null in that case; the caller then
 * takes the full path.
 *
 * Lighter than the full path's insert: no ordering-key ranking, no per-row
 * state in the result (none waits, so every queue is woken), and the ids come
 * back as one text value instead of a row per message. A column with the same
 * value for every message is sent once, as a scalar (see `column`), and the
 * counts per queue are the caller's, not an aggregate over the new rows.
 *
 * Payloads go as one text, one per line, split by string_to_array: neither
 * side escapes every quote of every payload as a text array needs, and the
 * server does not parse them as one JSON array either (about 0.5 ms less per
 * 1,000 than json_array_elements). A payload is JSON.stringify's output,
 * which never holds a raw line break (JSON escapes those inside strings), so
 * each line is exactly one payload, byte for byte.
 */
export async function insertPlain(db: PgSession, units: InsertUnit[]): Promise<InsertUnitResult[] | null> {
  const messages = units.flatMap((u) => (u.kind === 'send' ? u.messages : []));
  if (messages.length === 0) return null;
  const queues = [...new Set(messages.map((m) => m.queue))];
  const ids =
    messages.length === 1 ? await insertOne(db, messages[0] as NewMessage) : await insertMany(db, messages, queues);
  if (ids === null) return null;
  for (const queue of queues) db.wake.add(queue);
  let next = 0;
  return units.map((u) => ({
    ok: true,
    messages: (u.kind === 'send' ? u.messages : []).map((m) => ({
      id: ids[next++] as string,
      queue: m.queue,
      duplicate: false,
    })),
  }));
}

/**
 * One plain message, with scalar parameters. A send awaited on its own is
 * always a batch of one, and for it the batch statement's machinery (ten
 * array parameters for the server to parse, a JSON array, a set-returning
 * scan and an aggregate) cost more than storing the row: measured with the
 * commit's flush left out, about 190 us against 130 us here.
 */
async function insertOne(db: PgSession, m: NewMessage): Promise<string[] | null> {
  const [row] = await db.rows<{ id: string }>(
    // Purpose: store one plain message (no ordering or idempotency key) and count it, provided its
    //   queue exists and has no maxDepth; otherwise store nothing. Delayed when its run-at is ahead.
    // Params: $1 queue, $2 payload, $3 headers, $4 priority, $5 delay (ms), $6 run-at (ms, or null for
    //   now + delay), $7 max attempts, $8 backoff, $9 correlation id, $10 causation id, $11 counter shard.
    // Result: the new id, or no row when nothing was stored.
    `WITH ins AS (
       INSERT INTO {schema}.sluice_messages (queue, state, priority, run_at, payload, headers, max_attempts, backoff,
                                             correlation_id, causation_id, enqueued_at)
       SELECT q.name, CASE WHEN r.run_at > statement_timestamp() THEN 1 ELSE 0 END, $4::int, r.run_at, $2::text,
              $3::text, $7::int, $8::text, $9::text, $10::text, statement_timestamp()
         FROM {schema}.sluice_queues q
        CROSS JOIN LATERAL (SELECT CASE WHEN $6::int8 IS NULL THEN statement_timestamp() + $5::int8 * interval '1 millisecond'
                                        ELSE to_timestamp($6::int8::float8 / 1000) END AS run_at) AS r
        WHERE q.name = $1::text AND jsonb_typeof(q.config->'maxDepth') IS DISTINCT FROM 'number'
       RETURNING id, queue
     ), counted AS (
       INSERT INTO {schema}.sluice_counters AS c (queue, shard, depth, enqueued)
       SELECT queue, $11::int2, 1, 1 FROM ins
       ON CONFLICT (queue, shard) DO UPDATE SET depth = c.depth + 1, enqueued = c.enqueued + 1
     )
     SELECT id::text AS id FROM ins`,
    [
      m.queue,
      m.payload,
      m.headers,
      m.priority,
      m.delayMs,
      m.runAt,
      m.maxAttempts,
      m.backoff,
      m.correlationId,
      m.causationId,
      db.ctx.shard(),
    ],
  );
  return row === undefined ? null : [String(row.id)];
}

/** Several plain messages in one statement; see insertPlain. */
async function insertMany(db: PgSession, messages: NewMessage[], queues: string[]): Promise<string[] | null> {
  const counts = queues.map((queue) => messages.reduce((n, m) => (m.queue === queue ? n + 1 : n), 0));
  const [row] = await db.rows<{ ids: string | null }>(
    // Purpose: store plain messages (no ordering or idempotency key) in the given order and count
    //   them, provided every queue named exists and has no maxDepth; otherwise store nothing.
    //   A message whose run-at is ahead is delayed; the rest are ready.
    // Params: one column per pair, each either a list (one value per message) and null, or null and
    //   the value of every message: $1/$2 queues, $4/$5 headers, $6/$7 priorities, $8/$9 delays (ms),
    //   $10/$11 run-ats (ms, or null for now + delay), $12/$13 max attempts, $14/$15 backoffs,
    //   $16/$17 correlation ids, $18/$19 causation ids; $3 the payloads, one per line;
    //   $20 the distinct queues, $21 how many messages each gets, $22 counter shard.
    // Result: one row; ids: the new ids in input order (ids are drawn in it), comma-separated, or
    //   null when nothing was stored.
    `WITH guard AS (
       SELECT count(*) = cardinality($20::text[]) AS ok FROM {schema}.sluice_queues
        WHERE name = ANY($20::text[]) AND jsonb_typeof(config->'maxDepth') IS DISTINCT FROM 'number'
     ), ins AS (
       INSERT INTO {schema}.sluice_messages (queue, state, priority, run_at, payload, headers, max_attempts, backoff,
                                             correlation_id, causation_id, enqueued_at)
       SELECT s.queue, CASE WHEN s.run_at > statement_timestamp() THEN 1 ELSE 0 END, s.priority, s.run_at,
              s.payload, s.headers, s.max_attempts, s.backoff, s.correlation_id, s.causation_id, statement_timestamp()
         FROM (SELECT coalesce(u.queue, $2::text) AS queue, u.payload, coalesce(u.headers, $5::text) AS headers,
                      coalesce(u.priority, $7::int) AS priority, coalesce(u.max_attempts, $13::int) AS max_attempts,
                      coalesce(u.backoff, $15::text) AS backoff, coalesce(u.correlation_id, $17::text) AS correlation_id,
                      coalesce(u.causation_id, $19::text) AS causation_id, u.ord,
                      CASE WHEN coalesce(u.run_at_ms, $11::int8) IS NULL
                           THEN statement_timestamp() + coalesce(u.delay_ms, $9::int8) * interval '1 millisecond'
                           ELSE to_timestamp(coalesce(u.run_at_ms, $11::int8)::float8 / 1000) END AS run_at
                 FROM ROWS FROM (unnest($1::text[]), unnest(string_to_array($3::text, E'\\n')), unnest($4::text[]),
                                 unnest($6::int[]), unnest($8::int8[]), unnest($10::int8[]), unnest($12::int[]),
                                 unnest($14::text[]), unnest($16::text[]), unnest($18::text[]))
                      WITH ORDINALITY AS u(queue, payload, headers, priority, delay_ms, run_at_ms, max_attempts,
                                           backoff, correlation_id, causation_id, ord)) AS s
        WHERE (SELECT ok FROM guard)
        ORDER BY s.ord
       RETURNING id
     ), counted AS (
       INSERT INTO {schema}.sluice_counters AS c (queue, shard, depth, enqueued)
       SELECT t.queue, $22::int2, t.n, t.n FROM unnest($20::text[], $21::int8[]) AS t(queue, n)
        WHERE (SELECT ok FROM guard)
        ORDER BY t.queue
       ON CONFLICT (queue, shard) DO UPDATE SET depth = c.depth + excluded.depth, enqueued = c.enqueued + excluded.enqueued
     )
     SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM ins`,
    [
      ...column(messages, (m) => m.queue),
      payloadLines(messages),
      ...column(messages, (m) => m.headers),
      ...column(messages, (m) => m.priority),
      ...column(messages, (m) => m.delayMs),
      ...column(messages, (m) => m.runAt),
      ...column(messages, (m) => m.maxAttempts),
      ...column(messages, (m) => m.backoff),
      ...column(messages, (m) => m.correlationId),
      ...column(messages, (m) => m.causationId),
      queues,
      counts,
      db.ctx.shard(),
    ],
  );
  return row?.ids == null ? null : row.ids.split(',');
}

/** The payloads of a batch, one per line (see insertPlain). */
function payloadLines(messages: NewMessage[]): string {
  for (const m of messages) {
    // Cannot happen for JSON from encodePayload; a line break would split one message into two.
    if (m.payload.includes('\n')) throw new Error('internal error: a payload holds a raw line break');
  }
  return messages.map((m) => m.payload).join('\n');
}

/**
 * One column of a batch as two parameters: the list of its values and null,
 * or, when every message has the same value (null included), null and that
 * value. A sendMany to one queue sends its queue name once rather than a
 * thousand times, which neither side then has to escape, parse and unnest.
 */
function column<T>(messages: NewMessage[], f: (m: NewMessage) => T | null): [(T | null)[] | null, T | null] {
  const first = f(messages[0] as NewMessage);
  for (let i = 1; i < messages.length; i++) {
    if (f(messages[i] as NewMessage) !== first) return [messages.map(f), null];
  }
  return [null, first];
}

/**
 * Records the idempotency keys of the new rows. A key another transaction
 * recorded first (and still holds) wins: this batch's copy is deleted and
 * points at the winner's id.
 */
async function recordIdempotencyKeys(db: PgSession, rows: Row[], counters: CounterDeltas): Promise<void> {
  const keyed = rows
    .filter((r) => r.windowMs !== null)
    .sort(
      (a, b) =>
        compare(a.message.queue, b.message.queue) || compare(a.message.idempotencyKey, b.message.idempotencyKey),
    );
  if (keyed.length === 0) return;
  const won = await db.rows<{ queue: string; key: string }>(
    // Purpose: record idempotency keys, replacing expired ones; sorted input keeps row locks in one order.
    // Params: $1 queues, $2 keys, $3 message ids, $4 windows (ms). Result: the keys this statement recorded.
    `INSERT INTO {schema}.sluice_idempotency_keys AS k (queue, key, message_id, expires_at)
     SELECT t.queue, t.key, t.id, statement_timestamp() + t.window_ms * interval '1 millisecond'
       FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) WITH ORDINALITY AS t(queue, key, id, window_ms, ord)
      ORDER BY t.ord
     ON CONFLICT (queue, key) DO UPDATE SET message_id = excluded.message_id, expires_at = excluded.expires_at
      WHERE k.expires_at <= statement_timestamp()
     RETURNING k.queue, k.key`,
    [
      keyed.map((r) => r.message.queue),
      keyed.map((r) => r.message.idempotencyKey),
      keyed.map((r) => r.id),
      keyed.map((r) => r.windowMs),
    ],
  );
  const recorded = new Set(won.map((w) => `${w.queue}\u0000${w.key}`));
  const lost = keyed.filter((r) => !recorded.has(`${r.message.queue}\u0000${r.message.idempotencyKey}`));
  if (lost.length === 0) return;

  const winners = await db.rows<{ queue: string; key: string; message_id: string }>(
    // Purpose: the messages that own keys recorded by another transaction. Params: $1 queues, $2 keys.
    // Result: queue, key, message id.
    `SELECT k.queue, k.key, k.message_id::text AS message_id
       FROM {schema}.sluice_idempotency_keys k
       JOIN unnest($1::text[], $2::text[]) AS t(queue, key) ON k.queue = t.queue AND k.key = t.key`,
    [lost.map((r) => r.message.queue), lost.map((r) => r.message.idempotencyKey)],
  );
  const owner = new Map(winners.map((w) => [`${w.queue}\u0000${w.key}`, String(w.message_id)]));
  for (const r of lost) r.lostTo = owner.get(`${r.message.queue}\u0000${r.message.idempotencyKey}`) ?? null;
  const removed = lost.filter((r) => r.lostTo !== null);
  await db.rows(
    // Purpose: take back messages whose idempotency key another transaction recorded first. Params: $1 ids.
    'DELETE FROM {schema}.sluice_messages WHERE id = ANY($1::int8[])',
    [removed.map((r) => r.id)],
  );
  for (const r of removed) counters.add(r.message.queue, -1, -1, 0, 0, 0);
  // A removed copy may have been the head of its ordering key; writeInsert holds the keys' locks.
  await promoteNextOfKeys(
    db,
    removed
      .filter((r) => r.message.orderingKey !== null)
      .map((r) => ({ queue: r.message.queue, key: r.message.orderingKey as string })),
  );
}

function compare(a: string | null, b: string | null): number {
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}
