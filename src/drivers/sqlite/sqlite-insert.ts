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
  const run = new PlainRun(ctx, now, wake);
  const results = units.map((unit) => insertUnit(ctx, unit, now, queues, topics, counters, run, wake));
  run.store();
  counters.flush(ctx);
  return results;
}

/**
 * Fresh messages without an ordering key, gathered across the units of one
 * transaction so that concurrent single sends are stored with a few multi-row
 * INSERTs instead of one statement each. Anything that reads what earlier
 * messages wrote (an idempotency lookup, an ordering-key check) stores the
 * run first, so ids, keys and order are as if each message went alone.
 */
class PlainRun {
  private messages: NewMessage[] = [];
  private results: InsertedMessage[] = [];
  private dedupMs: number[] = [];

  constructor(
    private readonly ctx: SqliteContext,
    private readonly now: number,
    private readonly wake: WakeSet,
  ) {}

  /** Queues a message; `result.id` is filled in when the run is stored. */
  add(m: NewMessage, result: InsertedMessage, q: QueueRowLite): void {
    this.messages.push(m);
    this.results.push(result);
    this.dedupMs.push(q.config.dedupWindowMs);
  }

  store(): void {
    if (this.messages.length === 0) return;
    const ids = insertPlainRun(this.ctx, this.messages, this.now, this.wake);
    this.messages.forEach((m, k) => {
      const id = ids[k] as number;
      rememberIdempotencyKey(this.ctx, m, id, this.now, this.dedupMs[k] as number);
      (this.results[k] as InsertedMessage).id = String(id);
    });
    this.messages = [];
    this.results = [];
    this.dedupMs = [];
  }
}

function insertUnit(
  ctx: SqliteContext,
  unit: InsertUnit,
  now: number,
  queues: Map<string, QueueRowLite>,
  topics: Map<string, { queue: string; filter: HeaderFilter }[]>,
  counters: CounterDeltas,
  run: PlainRun,
  wake: WakeSet,
): InsertUnitResult {
  if (unit.kind === 'send' && unit.messages.length === 1) {
    const lone = unit.messages[0] as NewMessage;
    if (lone.idempotencyKey === null && lone.orderingKey === null)
      return insertLonePlain(ctx, lone, now, queues, counters, run);
  }
  const messages = unit.kind === 'send' ? unit.messages : fanOut(ctx, unit.topic, unit.message, topics);
  const rows = new Map<string, QueueRowLite>();
  for (const m of messages) rows.set(m.queue, transactionQueueRow(ctx, queues, m.queue, now));

  // Duplicates first: they store nothing and do not count against maxDepth.
  // Earlier units' keys must be in the table before looking them up.
  const duplicateOf: (string | null)[] = messages.map(() => null);
  if (messages.some((m) => m.idempotencyKey !== null)) run.store();
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

  // Messages without an ordering key join the run; a keyed message needs
  // "is its key busy" asked after every earlier message is stored, so it
  // stores the run and then goes alone.
  const inserted: InsertedMessage[] = messages.map((m, i) => {
    const dup = duplicateOf[i] as string | null;
    if (dup !== null) return { id: dup, queue: m.queue, duplicate: true };
    const q = rows.get(m.queue) as QueueRowLite;
    counters.add(m.queue, 1, 1, 0, 0, 0);
    q.depth += 1;
    const result: InsertedMessage = { id: '', queue: m.queue, duplicate: false };
    if (m.orderingKey === null) run.add(m, result, q);
    else {
      run.store();
      result.id = insertMessage(ctx, m, now, q, wake);
    }
    return result;
  });
  // A duplicate of a message earlier in this unit takes its id, known once the run is stored.
  if (duplicateOf.some((d) => d?.startsWith('#'))) {
    run.store();
    inserted.forEach((r, i) => {
      const dup = duplicateOf[i] as string | null;
      if (dup?.startsWith('#')) r.id = (inserted[Number(dup.slice(1))] as InsertedMessage).id;
    });
  }
  return { ok: true, messages: inserted };
}

/**
 * insertUnit for the commonest unit: one `send` with neither an idempotency
 * key nor an ordering key (what concurrent single sends are). The same
 * decisions without the general path's per-unit maps and arrays, which cost
 * about a tenth of such a send's time when 64 share a transaction.
 */
function insertLonePlain(
  ctx: SqliteContext,
  m: NewMessage,
  now: number,
  queues: Map<string, QueueRowLite>,
  counters: CounterDeltas,
  run: PlainRun,
): InsertUnitResult {
  const q = transactionQueueRow(ctx, queues, m.queue, now);
  const { maxDepth } = q.config;
  if (maxDepth !== null && q.depth + 1 > maxDepth) {
    return { ok: false, full: { queue: m.queue, maxDepth, retryAfterMs: FULL_RETRY_AFTER_MS } };
  }
  counters.add(m.queue, 1, 1, 0, 0, 0);
  q.depth += 1;
  const result: InsertedMessage = { id: '', queue: m.queue, duplicate: false };
  run.add(m, result, q);
  return { ok: true, messages: [result] };
}

/** A queue's row, read (or created) once per transaction and kept in `queues` for its other units. */
function transactionQueueRow(
  ctx: SqliteContext,
  queues: Map<string, QueueRowLite>,
  queue: string,
  now: number,
): QueueRowLite {
  let q = queues.get(queue);
  if (q === undefined) {
    q = queueRowEnsure(ctx, queue, now);
    queues.set(queue, q);
  }
  return q;
}

/** Rows per multi-row INSERT: a few fixed sizes, so a handful of statements are prepared. */
const RUN_SIZES = [64, 16, 4, 1] as const;
const COLUMNS = 13;

/**
 * Stores messages without an ordering key, in order, with as few statements
 * as the fixed sizes allow; returns their ids. Under the write lock and with
 * AUTOINCREMENT, the rows of one statement get consecutive ids in VALUES order.
 */
function insertPlainRun(ctx: SqliteContext, messages: NewMessage[], now: number, wake: WakeSet): number[] {
  const ids: number[] = [];
  let at = 0;
  while (at < messages.length) {
    const left = messages.length - at;
    const size = RUN_SIZES.find((n) => n <= left) as number;
    let slim = true;
    for (let k = 0; k < size && slim; k++) slim = hasNoOptions(messages[at + k] as NewMessage);
    const width = slim ? SLIM_COLUMNS : COLUMNS;
    const values: unknown[] = new Array(size * width);
    for (let k = 0; k < size; k++) {
      const m = messages[at + k] as NewMessage;
      const runAt = m.runAt ?? now + m.delayMs;
      const state = runAt > now ? S.delayed : S.ready;
      writeRow(values, k * width, m, state, runAt, now, slim);
      wake.add(m.queue);
    }
    const info = insertStatement(ctx, size, slim).run(values);
    const last = Number(info.lastInsertRowid);
    for (let k = 0; k < size; k++) ids.push(last - size + 1 + k);
    at += size;
  }
  return ids;
}

/**
 * True when a message sets none of the columns that are null by default:
 * most sends. Its rows go through a statement with 6 parameters a row instead
 * of 13; binding the nulls cost about a tenth of a 64-row transaction.
 */
function hasNoOptions(m: NewMessage): boolean {
  return (
    m.headers === null &&
    m.maxAttempts === null &&
    m.backoff === null &&
    m.orderingKey === null &&
    m.idempotencyKey === null &&
    m.correlationId === null &&
    m.causationId === null
  );
}

const SLIM_COLUMNS = 6;

/** The multi-row INSERTs for each run size, of the columns listed; `width` placeholders a row. */
function insertSqlBySize(columns: string, width: number): Map<number, string> {
  const row = `(${new Array(width).fill('?').join(', ')})`;
  return new Map(
    RUN_SIZES.map((n) => [n, `INSERT INTO sluice_messages (${columns}) VALUES ${new Array(n).fill(row).join(', ')}`]),
  );
}

// Purpose: store new messages, in order. Params: the columns listed, per row. Result: the last rowid.
const INSERT_SQL = insertSqlBySize(
  `queue, state, priority, run_at, payload, headers, max_attempts, backoff,
   ordering_key, idempotency_key, correlation_id, causation_id, enqueued_at`,
  COLUMNS,
);
// Purpose: the same for messages without options. Params: the columns listed, per row. Result: the last rowid.
const SLIM_INSERT_SQL = insertSqlBySize('queue, state, priority, run_at, payload, enqueued_at', SLIM_COLUMNS);

function insertStatement(ctx: SqliteContext, size: number, slim = false) {
  return ctx.stmt((slim ? SLIM_INSERT_SQL : INSERT_SQL).get(size) as string);
}

/**
 * Writes one message's columns into `values` from `at`: in INSERT_SQL's order,
 * or with `slim` in SLIM_INSERT_SQL's (the first five, then enqueued_at).
 */
function writeRow(
  values: unknown[],
  at: number,
  m: NewMessage,
  state: number,
  runAt: number,
  now: number,
  slim = false,
): void {
  values[at] = m.queue;
  values[at + 1] = state;
  values[at + 2] = m.priority;
  values[at + 3] = runAt;
  values[at + 4] = m.payload;
  if (slim) {
    values[at + 5] = now;
    return;
  }
  values[at + 5] = m.headers;
  values[at + 6] = m.maxAttempts;
  values[at + 7] = m.backoff;
  values[at + 8] = m.orderingKey;
  values[at + 9] = m.idempotencyKey;
  values[at + 10] = m.correlationId;
  values[at + 11] = m.causationId;
  values[at + 12] = now;
}

/** Remembers a stored message's idempotency key for its queue's dedup window; replaces an expired entry. */
function rememberIdempotencyKey(ctx: SqliteContext, m: NewMessage, id: number, now: number, dedupMs: number): void {
  if (m.idempotencyKey === null || dedupMs === 0) return;
  ctx
    .stmt(
      // Purpose: remember the key for the dedup window; replaces an expired entry. Params: queue, key, id, expiry.
      'INSERT OR REPLACE INTO sluice_idempotency_keys (queue, key, message_id, expires_at) VALUES (?, ?, ?, ?)',
    )
    .run(m.queue, m.idempotencyKey, id, now + dedupMs);
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
  const values: unknown[] = new Array(COLUMNS);
  writeRow(values, 0, m, state, runAt, now);
  const info = insertStatement(ctx, 1).run(values);
  const id = Number(info.lastInsertRowid);
  rememberIdempotencyKey(ctx, m, id, now, q.config.dedupWindowMs);
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
