/**
 * Claiming on PostgreSQL. One statement reads the queue's state, picks the
 * next messages in claim order with FOR UPDATE SKIP LOCKED (so concurrent
 * claimers in any process never wait for, or take, each other's rows), leases
 * them and returns them: no message is handed out twice and none is marked
 * done on hand-out.
 *
 * Delayed messages whose run-at has passed are claimed directly from the
 * delayed index, alongside the ready ones, instead of being promoted to ready
 * by a separate statement first (SQLite promotes them at the start of each
 * claim; here that would be a second round trip and a second write per row).
 * Statistics count them as ready, so both stores report the same.
 *
 * A queue with a global concurrency limit or a rate limit takes the slower
 * path: a transaction that locks the queue's row, so the limit holds across
 * every process, computes how many may be claimed, then runs the same claim.
 */
import type { QueueConfig } from '../../core/queue-config.js';
import { newLeaseToken } from '../../store/lease-token.js';
import { compareIds } from '../../store/message-id.js';
import type { ClaimedRow, MessageClaimParams, MessageClaimResult } from '../../store/store.js';
import { ms, type PgSession } from './postgres-context.js';

interface ClaimRowRaw {
  // Null in the queue's row; a leased message's id in the others.
  id: string | null;
  // The queue's values, in its row only (null in the others).
  paused: boolean | null;
  limited: boolean | null;
  config: string | null;
  retry_at: string | null;
  lease_expires_at: string | null;
  // One leased message per row.
  payload: string;
  headers: string | null;
  attempts: number;
  max_attempts: number | null;
  priority: number;
  run_at_us: string;
  ordering_key: string | null;
  idempotency_key: string | null;
  correlation_id: string | null;
  causation_id: string | null;
  enqueued_at: string;
}

// Purpose: lease up to $2 claimable messages (ready, or delayed and due) in claim order:
//   priority, then run-at, then id. Nothing is claimed from a paused queue, nor from a queue
//   with a limit unless $5 says the limit was applied by the caller.
// Params: $1 queue, $2 most to claim, $3 lease token prefix (the token is prefix || id),
//   $4 lease length (ms), $5 limits applied.
// Result: one row for the queue (id null): its paused flag, whether it has limits, its config, the
//   next run-at of a delayed message and the leases' expiry (ms); then one row per leased message
//   (queue columns null), in no particular order: claimRows sorts them into claim order, using
//   run_at_us (run-at in microseconds, exact). Sorting a thousand wide rows (payloads included),
//   numbering and joining them on the server took about a seventh of the claim's time.
//   No rows at all when the queue does not exist.
// The claim commits without waiting for its WAL flush (synchronous_commit off for this transaction
//   only): a claim lost in a database crash only returns the message to the queue, and its holder's
//   ack is then refused as for any lost lease. Sends and acks stay fully durable.
// The update finds its rows with id = ANY(ARRAY(...)): a primary-key lookup whatever the planner
//   guesses for LIMIT (SELECT n FROM n) (a tenth of the table once it has statistics). Joined with
//   the picked rows instead, it became a hash join over a sequential scan of the whole table.
export const CLAIM_SQL = `WITH q AS (
     SELECT paused, config::text AS config,
            (config->>'globalConcurrency') IS NOT NULL OR jsonb_typeof(config->'rateLimit') = 'object' AS limited,
            set_config('synchronous_commit', 'off', true) AS async_commit,
            statement_timestamp() + $4::int8 * interval '1 millisecond' AS lease_expires_at
       FROM {schema}.sluice_queues WHERE name = $1
   ), n AS (
     SELECT coalesce((SELECT CASE WHEN paused OR (limited AND NOT $5::boolean) THEN 0 ELSE $2::int END FROM q), 0) AS n
   ), ready AS MATERIALIZED (
     SELECT id, priority, run_at FROM {schema}.sluice_messages
      WHERE queue = $1 AND state = 0
      ORDER BY priority DESC, run_at, id
      LIMIT (SELECT n FROM n)
        FOR UPDATE SKIP LOCKED
   ), due AS MATERIALIZED (
     SELECT id, priority, run_at FROM {schema}.sluice_messages
      WHERE queue = $1 AND state = 1 AND run_at <= statement_timestamp()
      ORDER BY run_at, id
      LIMIT (SELECT n FROM n)
        FOR UPDATE SKIP LOCKED
   ), pick AS (
     SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) AS c
      ORDER BY priority DESC, run_at, id
      LIMIT (SELECT n FROM n)
   ), leased AS (
     UPDATE {schema}.sluice_messages m
        SET state = 3, attempts = m.attempts + 1, lease_token = $3::text || m.id,
            lease_expires_at = (SELECT lease_expires_at FROM q)
      WHERE m.id = ANY(ARRAY(SELECT id FROM pick))
     RETURNING m.id, m.payload, m.headers, m.attempts, m.max_attempts, m.priority, m.run_at, m.ordering_key,
               m.idempotency_key, m.correlation_id, m.causation_id, m.enqueued_at
   )
   SELECT NULL::text AS id, q.paused, q.limited, q.config,
          (SELECT ${ms('min(run_at)')} FROM {schema}.sluice_messages
            WHERE queue = $1 AND state = 1 AND run_at > statement_timestamp()) AS retry_at,
          ${ms('q.lease_expires_at')} AS lease_expires_at,
          NULL::text AS payload, NULL::text AS headers, NULL::int AS attempts, NULL::int AS max_attempts,
          NULL::int AS priority, NULL::int8 AS run_at_us, NULL::text AS ordering_key, NULL::text AS idempotency_key,
          NULL::text AS correlation_id, NULL::text AS causation_id, NULL::int8 AS enqueued_at
     FROM q
   UNION ALL
   SELECT l.id::text, NULL, NULL, NULL, NULL, NULL, l.payload, l.headers, l.attempts, l.max_attempts, l.priority,
          (extract(epoch FROM l.run_at) * 1000000)::int8, l.ordering_key, l.idempotency_key, l.correlation_id,
          l.causation_id, ${ms('l.enqueued_at')}
     FROM leased l`;

/**
 * Claims up to `limit` messages. Returns null when the queue has a limit and
 * `limitsApplied` is false: the caller must take the limited path.
 */
export async function claimRows(
  db: PgSession,
  params: MessageClaimParams,
  limit: number,
  limitsApplied: boolean,
): Promise<{ result: MessageClaimResult; config: QueueConfig } | null> {
  // One random prefix per claim; each message's token is the prefix and its id (unguessable, and
  // new for every claim of a message). Cheaper than a token per row, passed and subscripted as an array.
  const prefix = newLeaseToken();
  const rows = await db.rows<ClaimRowRaw>(CLAIM_SQL, [params.queue, limit, prefix, params.leaseMs, limitsApplied]);
  const queueRow = rows.find((r) => r.id === null);
  if (queueRow === undefined)
    return { result: { messages: [], retryAt: null, paused: false }, config: db.ctx.config(null) };
  const config = db.ctx.config(queueRow.config);
  if (queueRow.paused) return { result: { messages: [], retryAt: null, paused: true }, config };
  if (queueRow.limited && !limitsApplied) return null;
  const leaseExpiresAt = Number(queueRow.lease_expires_at);
  const leased = rows.filter((r) => r.id !== null).sort(claimOrder);
  const messages: ClaimedRow[] = leased.map((r) => {
    const id = String(r.id);
    return {
      id,
      queue: params.queue,
      payload: r.payload,
      headers: r.headers,
      attempt: Number(r.attempts),
      maxAttempts: r.max_attempts === null ? config.maxAttempts : Number(r.max_attempts),
      priority: Number(r.priority),
      orderingKey: r.ordering_key,
      idempotencyKey: r.idempotency_key,
      correlationId: r.correlation_id ?? id,
      causationId: r.causation_id,
      enqueuedAt: Number(r.enqueued_at),
      leaseToken: prefix + id,
      leaseExpiresAt,
    };
  });
  const retryAt = messages.length < params.max && queueRow.retry_at !== null ? Number(queueRow.retry_at) : null;
  return { result: { messages, retryAt, paused: false }, config };
}

/**
 * Claim order: priority (highest first), then run-at, then id. Run-ats are
 * microseconds since the epoch, below 2^53 and so exact as numbers.
 */
function claimOrder(a: ClaimRowRaw, b: ClaimRowRaw): number {
  return (
    Number(b.priority) - Number(a.priority) ||
    Number(a.run_at_us) - Number(b.run_at_us) ||
    compareIds(a.id as string, b.id as string)
  );
}

/**
 * The limited path, inside a transaction: lock the queue's row (every
 * claimer of a limited queue queues here), count what the limits allow, claim
 * that many, and record the claims in the rate window.
 */
export async function claimLimited(
  db: PgSession,
  params: MessageClaimParams,
): Promise<{ result: MessageClaimResult; limited: boolean }> {
  const [q] = await db.rows<{ config: string; window_start: string; window_count: number; now: string }>(
    // Purpose: lock a limited queue's row for this claim and read its rate window.
    // Params: $1 queue. Result: config, window start (ms), count in the window, now (ms).
    `SELECT config::text AS config, ${ms('rate_window_start')} AS window_start, rate_window_count AS window_count,
            ${ms('statement_timestamp()')} AS now
       FROM {schema}.sluice_queues WHERE name = $1 FOR UPDATE`,
    [params.queue],
  );
  if (q === undefined) return { result: { messages: [], retryAt: null, paused: false }, limited: false };
  const config = db.ctx.config(q.config);
  const limited = config.globalConcurrency !== null || config.rateLimit !== null;
  const now = Number(q.now);
  let allowed = params.max;
  let rateRetryAt: number | null = null;
  if (config.globalConcurrency !== null) {
    const [row] = await db.rows<{ n: string }>(
      // Purpose: messages in flight across every process. Params: $1 queue. Result: count.
      'SELECT count(*) AS n FROM {schema}.sluice_messages WHERE queue = $1 AND state = 3',
      [params.queue],
    );
    allowed = Math.min(allowed, config.globalConcurrency - Number(row?.n ?? 0));
  }
  let windowStart = Number(q.window_start);
  let windowCount = Number(q.window_count);
  if (config.rateLimit !== null) {
    if (now >= windowStart + config.rateLimit.perMs) {
      windowStart = now;
      windowCount = 0;
    }
    const left = config.rateLimit.max - windowCount;
    if (left < allowed) {
      allowed = left;
      rateRetryAt = windowStart + config.rateLimit.perMs;
    }
  }
  let result: MessageClaimResult = { messages: [], retryAt: null, paused: false };
  if (allowed > 0) {
    result = ((await claimRows(db, params, allowed, true)) as { result: MessageClaimResult }).result;
  } else {
    const [row] = await db.rows<{ paused: boolean; retry_at: string | null }>(
      // Purpose: whether the queue is paused, and when its next delayed message is due. Params: $1 queue.
      `SELECT paused, (SELECT ${ms('min(run_at)')} FROM {schema}.sluice_messages
                        WHERE queue = $1 AND state = 1 AND run_at > statement_timestamp()) AS retry_at
         FROM {schema}.sluice_queues WHERE name = $1`,
      [params.queue],
    );
    if (row?.paused) return { result: { messages: [], retryAt: null, paused: true }, limited };
    result.retryAt = row?.retry_at == null ? null : Number(row.retry_at);
  }
  if (config.rateLimit !== null) {
    await db.rows(
      // Purpose: record claims in the rate window. Params: $1 queue, $2 window start (ms), $3 count.
      `UPDATE {schema}.sluice_queues SET rate_window_start = to_timestamp($2::float8 / 1000), rate_window_count = $3
        WHERE name = $1`,
      [params.queue, windowStart, windowCount + result.messages.length],
    );
  }
  if (rateRetryAt !== null && result.messages.length === Math.max(0, allowed) && result.messages.length < params.max) {
    result.retryAt = result.retryAt === null ? rateRetryAt : Math.min(result.retryAt, rateRetryAt);
  }
  return { result, limited };
}
