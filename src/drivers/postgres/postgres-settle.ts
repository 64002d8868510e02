/**
 * Settling leased messages on PostgreSQL: ack, retry, dead-letter, extend,
 * release, and the rescue of expired leases.
 *
 * Leases are checked against `clock_timestamp()` (the database's clock) after
 * the row is locked, so a late ack with an old token or after expiry changes
 * nothing, however long the statement waited for the lock.
 *
 * Acks are the hot path: `ackUnlocked` settles a whole batch in one statement
 * (delete, or keep as completed for queues with retention, and count) that
 * takes no row lock of its own. A message with an ordering key also needs the
 * next message of its key promoted under the key's lock, in the same
 * transaction: the first pass leaves keyed messages alone, and the store
 * settles them (and anything else the first pass left) with
 * `settleInTransaction`, whose `ackPass` locks rows in id order first.
 *
 * Lock order, the same in every transaction, so none can wait on another in a
 * cycle: message rows (ascending id, all of a batch in one statement), then
 * ordering-key locks (ascending, all in one statement), then counter rows
 * (ascending queue). Claims skip locked rows and never wait.
 */
import { parseBackoff } from '../../core/backoff.js';
import { planFailure } from '../../core/failure-plan.js';
import type { DeadReason } from '../../core/message-state.js';
import { appendError, truncateError } from '../../store/error-history.js';
import { compareIds } from '../../store/message-id.js';
import type { FinishItem, FinishResult, LeaseExtendResult, LeaseRef, LeaseRescueResult } from '../../store/store.js';
import { CounterDeltas, ms, type PgSession } from './postgres-context.js';
import { lockOrderingKeys, promoteNextOfKeys, type QueueKey } from './postgres-keys.js';

/**
 * The message row `a.id` while `a.token` holds its lease, locked: a lateral
 * subquery of a statement that unnests ids and tokens as `a`. Each row is
 * found through the primary key whatever the planner thinks of the table's
 * size (a plan is made once per connection and kept), and rows are locked in
 * the order of the input, which `leaseColumns` sorts by id.
 *
 * Statements here that find messages by id test their state as
 * `m.state + 0 = 3`: the same test as `m.state = 3`, but one that no partial
 * index on state can serve, so the lookup goes through the primary key. With
 * `m.state = 3`, once the table had statistics taken while its messages were
 * waiting, PostgreSQL judged the in-flight index nearly empty, chose it, and
 * scanned every leased message once per message settled: an ack of 1,000
 * took seconds.
 */
export const LOCK_LEASED = `SELECT m.id, m.queue, m.ordering_key, m.lease_expires_at FROM {schema}.sluice_messages m
                      WHERE m.id = a.id AND m.state + 0 = 3 AND m.lease_token = a.token FOR UPDATE`;

/** Ids and tokens as two array parameters, in ascending id order (the lock order). */
function leaseColumns(items: LeaseRef[]): [string[], string[]] {
  const sorted = byId(items);
  return [sorted.map((i) => i.id), sorted.map((i) => i.leaseToken)];
}

/** The items in ascending id order. */
function byId<T extends LeaseRef>(items: T[]): T[] {
  return [...items].sort((x, y) => compareIds(x.id, y.id));
}

/** Identifies a settle item by message and token, since a batch may hold two tokens for one message. */
export function leaseKey(item: LeaseRef): string {
  return `${item.id}:${item.leaseToken}`;
}

/** What one ack pass did; items are identified by `leaseKey`. */
export interface AckPass {
  /** Results of the settled items. */
  settled: Map<string, FinishResult>;
  /** Ordering keys whose head was settled: their next message is promoted by `finishKeyed`. */
  freed: QueueKey[];
}

/**
 * Acks the items whose lease is held, inside a transaction that settles keys
 * and failures too: each row is locked first, in id order, so that the keys
 * and counters locked after it keep the transaction's lock order. The counts
 * are added to `counters`, written last in the transaction.
 */
export async function ackPass(db: PgSession, items: LeaseRef[], counters: CounterDeltas): Promise<AckPass> {
  const pass: AckPass = { settled: new Map(), freed: [] };
  if (items.length === 0) return pass;
  const sorted = byId(items);
  const rows = await db.rows<{
    ords: string;
    queue: string;
    ordering_key: string | null;
    retain: boolean;
    limited: boolean;
  }>(
    // Purpose: settle acked messages whose lease is held: delete them, or keep them as completed when
    //   their queue retains completions. Each row is found by its primary key and locked in the
    //   order given (ascending id); the expiry is checked after the lock is held.
    // Params: $1 ids (ascending), $2 lease tokens.
    // Result: the messages whose lease was held, grouped: ords (their 1-based positions in $1,
    //   comma-separated), queue, ordering key, retained, whether the queue has a concurrency limit.
    `WITH held AS MATERIALIZED (
       SELECT a.ord, m.id, m.queue, m.ordering_key,
              coalesce((q.config->>'retentionMs')::int8, 0) > 0 AS retain,
              (q.config->>'globalConcurrency') IS NOT NULL AS limited
         FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS a(id, token, ord)
        CROSS JOIN LATERAL (${LOCK_LEASED}) AS m
         LEFT JOIN {schema}.sluice_queues q ON q.name = m.queue
        WHERE m.lease_expires_at > clock_timestamp()
     ), deleted AS (
       DELETE FROM {schema}.sluice_messages
        WHERE id = ANY(ARRAY(SELECT id FROM held WHERE NOT retain))
     ), completed AS (
       UPDATE {schema}.sluice_messages
          SET state = 5, finished_at = statement_timestamp(), lease_token = NULL, lease_expires_at = NULL
        WHERE id = ANY(ARRAY(SELECT id FROM held WHERE retain))
     )
     SELECT string_agg(ord::text, ',') AS ords, queue, ordering_key, retain, limited
       FROM held GROUP BY queue, ordering_key, retain, limited`,
    leaseColumns(sorted),
  );
  for (const r of rows) {
    const ords = r.ords.split(',');
    const result: FinishResult = { ok: true, state: r.retain ? 'completed' : 'deleted' };
    for (const o of ords) pass.settled.set(leaseKey(sorted[Number(o) - 1] as LeaseRef), result);
    counters.add(r.queue, -ords.length, 0, ords.length, 0, 0);
    if (r.ordering_key !== null) pass.freed.push({ queue: r.queue, key: r.ordering_key });
    // A freed slot under a global concurrency limit may let a waiting worker claim.
    if (r.limited) db.wake.add(r.queue);
  }
  return pass;
}

/**
 * Message `m` has no ordering key and its lease, the token `$2` (a JSON object
 * from id to token) names for it, is held: the condition the unlocked ack
 * checks, and PostgreSQL re-checks on a row that changed while it waited.
 */
const HELD_PLAIN = `m.state + 0 = 3 AND m.ordering_key IS NULL
        AND m.lease_token = ($2::jsonb ->> m.id::text) AND m.lease_expires_at > clock_timestamp()`;

// Purpose: settle acked messages without an ordering key whose lease is held: delete them, or
//   keep them as completed when their queue retains completions; count them. No explicit lock:
//   the DELETE and UPDATE re-check the lease on the row version they change. The queues that
//   retain are listed once (r), not looked up once per message (a tenth of the statement's time).
// Params: $1 ids (in any order: the primary-key scan takes them, and so locks the rows, in id
//   order), $2 JSON object from id to lease token, $3 counter shard.
// Result: the messages settled, grouped: ids (comma-separated), queue, retained, whether the
//   queue has a concurrency limit.
export const ACK_UNLOCKED_SQL = `WITH r AS MATERIALIZED (
     SELECT coalesce(array_agg(name), '{}') AS retaining FROM {schema}.sluice_queues
      WHERE coalesce((config->>'retentionMs')::int8, 0) > 0
   ), deleted AS (
     DELETE FROM {schema}.sluice_messages m
      WHERE m.id = ANY(ARRAY(SELECT unnest($1::int8[]))) AND ${HELD_PLAIN}
        AND m.queue <> ALL (CAST((SELECT retaining FROM r) AS text[]))
     RETURNING m.id, m.queue, false AS retain
   ), completed AS (
     UPDATE {schema}.sluice_messages m
        SET state = 5, finished_at = statement_timestamp(), lease_token = NULL, lease_expires_at = NULL
      WHERE m.id = ANY(ARRAY(SELECT unnest($1::int8[]) WHERE cardinality((SELECT retaining FROM r)) > 0))
        AND ${HELD_PLAIN}
        AND m.queue = ANY (CAST((SELECT retaining FROM r) AS text[]))
     RETURNING m.id, m.queue, true AS retain
   ), done AS (
     SELECT * FROM deleted UNION ALL SELECT * FROM completed
   ), counted AS (
     INSERT INTO {schema}.sluice_counters AS c (queue, shard, depth, completed)
     SELECT queue, $3::int2, -count(*), count(*) FROM done GROUP BY queue ORDER BY queue
     ON CONFLICT (queue, shard) DO UPDATE SET depth = c.depth + excluded.depth, completed = c.completed + excluded.completed
   )
   SELECT string_agg(d.id::text, ',') AS ids, d.queue, d.retain,
          coalesce((SELECT (q.config->>'globalConcurrency') IS NOT NULL FROM {schema}.sluice_queues q
                     WHERE q.name = d.queue), false) AS limited
     FROM done d GROUP BY d.queue, d.retain`;

/**
 * The hot ack, outside a transaction: settles the acks whose lease is held
 * and whose message has no ordering key, in one statement that takes no row
 * lock of its own. Returns their results, keyed by `leaseKey`; every item
 * left out (a lost lease, a keyed message, a second token for one message)
 * is for `settleInTransaction` to settle or refuse.
 *
 * `ackPass` locks each row first and then deletes it: two row writes, two WAL
 * records (a 1,000-message ack took 15.2 ms against 13.2 ms here, median of
 * 30 batches). Here the DELETE (or, for a queue that retains completions, the
 * UPDATE) is the only write. The lease is re-checked on the row version
 * being deleted: when a concurrent rescue or re-claim changed the row after
 * this statement's snapshot, PostgreSQL re-evaluates the conditions on the
 * new version, and a new token (or an expiry) makes the row drop out. The
 * tokens are passed as one JSON object from id to token, so that check is a
 * lookup in the object, not a join whose plan could leave the primary key.
 */
export async function ackUnlocked(db: PgSession, items: LeaseRef[]): Promise<Map<string, FinishResult>> {
  const settled = new Map<string, FinishResult>();
  // The first token of each id. Both parameters are written as text here: ids are digit strings
  // (the store checks them), so they go in as they are, and a thousand-item ack is one join each
  // instead of an array encoder quoting every element and a JSON encoder walking an object.
  const tokens = new Map<string, string>();
  const pairs: string[] = [];
  for (const item of items) {
    if (tokens.has(item.id)) continue;
    tokens.set(item.id, item.leaseToken);
    pairs.push(`"${item.id}":${JSON.stringify(item.leaseToken)}`);
  }
  if (tokens.size === 0) return settled;
  const rows = await db.rows<{ ids: string; queue: string; retain: boolean; limited: boolean }>(ACK_UNLOCKED_SQL, [
    `{${[...tokens.keys()].join(',')}}`,
    `{${pairs.join(',')}}`,
    db.ctx.shard(),
  ]);
  for (const r of rows) {
    const result: FinishResult = { ok: true, state: r.retain ? 'completed' : 'deleted' };
    for (const id of r.ids.split(',')) settled.set(leaseKey({ id, leaseToken: tokens.get(id) as string }), result);
    // A freed slot under a global concurrency limit may let a waiting worker claim.
    if (r.limited) db.wake.add(r.queue);
  }
  return settled;
}

/** Promotes the next message of each key freed by settled heads; needs a transaction. */
export async function finishKeyed(db: PgSession, freed: QueueKey[]): Promise<void> {
  if (freed.length === 0) return;
  // Taken after the heads are gone (in this transaction): an inserter that saw
  // the old head and made its message wait commits first, and is then seen here.
  await lockOrderingKeys(db, freed);
  await promoteNextOfKeys(db, freed);
}

/**
 * Settles acks (with or without ordering keys) and failures in the current
 * transaction, keeping the lock order: all rows, then keys, then counters.
 * Results are keyed by `leaseKey`.
 */
export async function settleInTransaction(
  db: PgSession,
  acks: LeaseRef[],
  failures: FinishItem[],
): Promise<Map<string, FinishResult>> {
  if (failures.length > 0) {
    await db.rows(
      // Purpose: lock every in-flight message the batch settles, in id order, before anything else
      //   (acks alone need not: the ack statement locks its rows in id order itself).
      // Params: $1 ids. Result: one row per message locked.
      'SELECT id FROM {schema}.sluice_messages WHERE id = ANY($1::int8[]) AND state + 0 = 3 ORDER BY id FOR UPDATE',
      [[...acks, ...failures].map((i) => i.id)],
    );
  }
  const counters = new CounterDeltas();
  const pass = await ackPass(db, acks, counters);
  const failed = await failItems(db, failures, counters);
  for (const [key, result] of failed.results) pass.settled.set(key, result);
  await finishKeyed(db, [...pass.freed, ...failed.freed]);
  await counters.flush(db);
  return pass.settled;
}

interface FailRowRaw {
  id: string;
  queue: string;
  attempts: number;
  max_attempts: number | null;
  backoff: string | null;
  ordering_key: string | null;
  errors: string | null;
  config: string | null;
  now: string;
}

/** One row's new state after a failure or an expired lease. */
interface FailChange {
  id: string;
  /** Null: the lease is not checked (rescue holds the row lock and checked expiry). */
  token: string | null;
  state: 0 | 1 | 4;
  /** Null keeps the run-at (a rescued message keeps its place in claim order). */
  delayMs: number | null;
  lastError: string;
  history: string;
  reason: DeadReason | null;
}

/** Retries or dead-letters failed items (kinds `retry` and `dead`); the caller has locked their rows. */
async function failItems(
  db: PgSession,
  items: FinishItem[],
  counters: CounterDeltas,
): Promise<{ results: Map<string, FinishResult>; freed: QueueKey[] }> {
  const results = new Map<string, FinishResult>();
  if (items.length === 0) return { results, freed: [] };
  const rows = await db.rows<FailRowRaw>(
    // Purpose: what planning a retry needs, for in-flight messages being failed.
    // Params: $1 ids. Result: the rows still in flight, with their queue's config and the time now (ms).
    `SELECT m.id::text AS id, m.queue, m.attempts, m.max_attempts, m.backoff, m.ordering_key, m.errors,
            q.config::text AS config, ${ms('statement_timestamp()')} AS now
       FROM {schema}.sluice_messages m LEFT JOIN {schema}.sluice_queues q ON q.name = m.queue
      WHERE m.id = ANY($1::int8[]) AND m.state + 0 = 3`,
    [items.map((i) => i.id)],
  );
  const byId = new Map(rows.map((r) => [String(r.id), r]));
  const changes: FailChange[] = [];
  for (const item of items) {
    const row = byId.get(item.id);
    const outcome = item.outcome;
    if (row === undefined || outcome.kind === 'ack') continue;
    const config = db.ctx.config(row.config);
    if (config.globalConcurrency !== null) db.wake.add(row.queue);
    const attempts = Number(row.attempts);
    const history = appendError(row.errors, attempts, outcome.error, Number(row.now));
    const lastError = truncateError(outcome.error);
    let reason: DeadReason;
    if (outcome.kind === 'retry') {
      const plan = planFailure(
        {
          attempt: attempts,
          maxAttempts: row.max_attempts === null ? config.maxAttempts : Number(row.max_attempts),
          backoff: row.backoff === null ? config.backoff : parseBackoff(JSON.parse(row.backoff), 'backoff'),
          requestedDelayMs: outcome.delayMs,
          permanent: undefined,
        },
        db.ctx.random,
      );
      if (plan.retry) {
        const state = plan.delayMs > 0 ? 1 : 0;
        changes.push({
          id: item.id,
          token: item.leaseToken,
          state,
          delayMs: plan.delayMs,
          lastError,
          history,
          reason: null,
        });
        continue;
      }
      reason = plan.reason;
    } else {
      reason = outcome.reason;
    }
    changes.push({ id: item.id, token: item.leaseToken, state: 4, delayMs: 0, lastError, history, reason });
  }
  const applied = await applyFailChanges(db, changes, counters);
  for (const c of changes) {
    if (!applied.ids.has(c.id)) continue;
    const state = c.state === 4 ? 'dead' : c.state === 1 ? 'delayed' : 'ready';
    results.set(leaseKey({ id: c.id, leaseToken: c.token as string }), { ok: true, state });
  }
  return { results, freed: applied.freed };
}

/**
 * Writes retries and dead letters and adds their counts. Returns the ids
 * changed and the ordering keys whose head died (to promote their next).
 */
async function applyFailChanges(
  db: PgSession,
  changes: FailChange[],
  counters: CounterDeltas,
): Promise<{ ids: Set<string>; freed: QueueKey[] }> {
  if (changes.length === 0) return { ids: new Set(), freed: [] };
  const rows = await db.rows<{ id: string; queue: string; state: number; ordering_key: string | null }>(
    // Purpose: move in-flight messages (already locked by this transaction) to ready or delayed
    //   (retry) or dead, with their error history; when a token is given, only while that lease is
    //   still held.
    // Params: $1 ids, $2 tokens (null: unchecked), $3 new states, $4 retry delays (ms; null keeps
    //   run-at), $5 last errors, $6 histories, $7 dead reasons.
    // Result: id, queue, new state, ordering key of each row changed.
    `UPDATE {schema}.sluice_messages m
        SET state = c.state,
            run_at = CASE WHEN c.state = 4 OR c.delay_ms IS NULL THEN m.run_at
                          ELSE statement_timestamp() + c.delay_ms * interval '1 millisecond' END,
            lease_token = NULL, lease_expires_at = NULL, last_error = c.last_error, errors = c.history,
            dead_reason = c.reason,
            finished_at = CASE WHEN c.state = 4 THEN statement_timestamp() END
       FROM unnest($1::int8[], $2::text[], $3::int2[], $4::int8[], $5::text[], $6::text[], $7::text[])
            AS c(id, token, state, delay_ms, last_error, history, reason)
      WHERE m.id = c.id AND m.state + 0 = 3
        AND (c.token IS NULL OR (m.lease_token = c.token AND m.lease_expires_at > clock_timestamp()))
     RETURNING m.id::text AS id, m.queue, m.state, m.ordering_key`,
    [
      changes.map((c) => c.id),
      changes.map((c) => c.token),
      changes.map((c) => c.state),
      changes.map((c) => c.delayMs),
      changes.map((c) => c.lastError),
      changes.map((c) => c.history),
      changes.map((c) => c.reason),
    ],
  );
  const freed: QueueKey[] = [];
  for (const r of rows) {
    if (Number(r.state) === 4) {
      counters.add(r.queue, -1, 0, 0, 0, 1);
      if (r.ordering_key !== null) freed.push({ queue: r.queue, key: r.ordering_key });
    } else {
      counters.add(r.queue, 0, 0, 0, 1, 0);
      db.wake.add(r.queue);
    }
  }
  return { ids: new Set(rows.map((r) => String(r.id))), freed };
}

export async function extendLeases(db: PgSession, items: LeaseRef[], leaseMs: number): Promise<LeaseExtendResult> {
  if (items.length === 0) return [];
  const rows = await db.rows<{ id: string; expires_at: string }>(
    // Purpose: move held leases' expiry to $3 ms from now; rows locked in the order given (ascending
    //   id), expiry checked after. Committed without waiting for the WAL flush, like a claim: an
    //   extension lost in a crash only shortens a lease. Params: $1 ids (ascending), $2 tokens,
    //   $3 lease length (ms).
    // Result: id and new expiry (ms) of each lease held.
    `WITH locked AS MATERIALIZED (
       SELECT m.id FROM unnest($1::int8[], $2::text[]) AS a(id, token) CROSS JOIN LATERAL (${LOCK_LEASED}) AS m
        WHERE m.lease_expires_at > clock_timestamp()
     )
     UPDATE {schema}.sluice_messages m
        SET lease_expires_at = clock_timestamp() + $3::int8 * interval '1 millisecond'
      WHERE m.id = ANY(ARRAY(SELECT id FROM locked))
     RETURNING m.id::text AS id, ${ms('m.lease_expires_at')} AS expires_at,
               (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`,
    [...leaseColumns(items), leaseMs],
  );
  const expiry = new Map(rows.map((r) => [String(r.id), Number(r.expires_at)]));
  return items.map((i) => expiry.get(i.id) ?? null);
}

export async function releaseLeases(db: PgSession, items: LeaseRef[]): Promise<boolean[]> {
  if (items.length === 0) return [];
  const rows = await db.rows<{ id: string; queue: string }>(
    // Purpose: hand messages back unprocessed (shutdown), giving the attempt back; rows locked in the
    //   order given (ascending id), expiry checked after. Committed without waiting for the WAL
    //   flush: a release lost in a crash leaves the lease to expire instead.
    //   Params: $1 ids (ascending), $2 tokens.
    // Result: id and queue of each message whose lease was held.
    `WITH locked AS MATERIALIZED (
       SELECT m.id FROM unnest($1::int8[], $2::text[]) AS a(id, token) CROSS JOIN LATERAL (${LOCK_LEASED}) AS m
        WHERE m.lease_expires_at > clock_timestamp()
     )
     UPDATE {schema}.sluice_messages m
        SET state = 0, attempts = greatest(m.attempts - 1, 0), lease_token = NULL, lease_expires_at = NULL
      WHERE m.id = ANY(ARRAY(SELECT id FROM locked))
     RETURNING m.id::text AS id, m.queue, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`,
    leaseColumns(items),
  );
  for (const r of rows) db.wake.add(r.queue);
  const released = new Set(rows.map((r) => String(r.id)));
  return items.map((i) => released.has(i.id));
}

/**
 * True when some lease has run out. Every consuming process sweeps once a
 * second and there is usually nothing to rescue: one statement, outside a
 * transaction, instead of the rescue's BEGIN, lock and COMMIT.
 */
export async function anyExpiredLease(db: PgSession): Promise<boolean> {
  const [row] = await db.rows<{ expired: boolean }>(
    // Purpose: whether any lease has run out, across all queues. Params: none. Result: one row, expired.
    `SELECT EXISTS (SELECT 1 FROM {schema}.sluice_messages
                     WHERE state = 3 AND lease_expires_at <= statement_timestamp()) AS expired`,
    [],
  );
  return row?.expired === true;
}

/** Requeues or dead-letters messages whose lease ran out; in a transaction. */
export async function rescueExpiredLeases(db: PgSession, limit: number): Promise<LeaseRescueResult> {
  const rows = await db.rows<FailRowRaw>(
    // Purpose: lock expired leases no settler or other rescuer holds (skipping, never waiting).
    // Params: $1 limit. Result: the rows, with their queue's config and the time now (ms).
    `SELECT m.id::text AS id, m.queue, m.attempts, m.max_attempts, m.backoff, m.ordering_key, m.errors,
            q.config::text AS config, ${ms('statement_timestamp()')} AS now
       FROM {schema}.sluice_messages m LEFT JOIN {schema}.sluice_queues q ON q.name = m.queue
      WHERE m.state = 3 AND m.lease_expires_at <= statement_timestamp()
      ORDER BY m.lease_expires_at
      LIMIT $1
        FOR UPDATE OF m SKIP LOCKED`,
    [limit],
  );
  const changes: FailChange[] = rows.map((r) => {
    const attempts = Number(r.attempts);
    const maxAttempts = r.max_attempts === null ? db.ctx.config(r.config).maxAttempts : Number(r.max_attempts);
    const error = `lease expired on attempt ${attempts}: the consumer stopped, crashed or stalled without settling the message`;
    const history = appendError(r.errors, attempts, error, Number(r.now));
    const dead = attempts >= maxAttempts;
    return {
      id: String(r.id),
      token: null,
      state: dead ? 4 : 0,
      delayMs: null,
      lastError: error,
      history,
      reason: dead ? 'lease_expired' : null,
    };
  });
  const counters = new CounterDeltas();
  const applied = await applyFailChanges(db, changes, counters);
  await finishKeyed(db, applied.freed);
  await counters.flush(db);
  const deadLettered = changes.filter((c) => c.state === 4).length;
  return { requeued: changes.length - deadLettered, deadLettered, queues: [...db.wake] };
}
