/**
 * Claiming on SQLite: delayed messages come due, limits are applied, and the
 * next ready messages are leased, inside the caller's BEGIN IMMEDIATE
 * transaction (so the rows read are still ready when they are leased).
 */
import { newLeaseToken } from '../../store/lease-token.js';
import type { ClaimedRow, MessageClaimParams, MessageClaimResult } from '../../store/store.js';
import { queueRowRead, type SqliteContext } from './sqlite-context.js';

type ClaimRowRaw = [
  number, // id
  string, // payload
  string | null, // headers
  number, // attempts
  number | null, // max_attempts
  number, // priority
  string | null, // ordering_key
  string | null, // idempotency_key
  string | null, // correlation_id
  string | null, // causation_id
  number, // enqueued_at
];

export function claimMessages(ctx: SqliteContext, params: MessageClaimParams): MessageClaimResult {
  const now = ctx.clock.now();
  const q = queueRowRead(ctx, params.queue);
  if (q === null) return { messages: [], retryAt: null, paused: false };
  if (q.paused) return { messages: [], retryAt: null, paused: true };

  ctx
    .stmt(
      // Purpose: delayed messages whose time has come become ready. Params: queue, now.
      'UPDATE sluice_messages SET state = 0 WHERE queue = ? AND state = 1 AND run_at <= ?',
    )
    .run(params.queue, now);

  let allowed = params.max;
  let rateRetryAt: number | null = null;
  const { globalConcurrency, rateLimit } = q.config;
  if (globalConcurrency !== null) {
    const inFlight = ctx
      .stmt(
        // Purpose: messages in flight across every process. Params: queue. Result: count.
        'SELECT count(*) FROM sluice_messages WHERE queue = ? AND state = 3',
      )
      .pluck()
      .get(params.queue) as number;
    allowed = Math.min(allowed, globalConcurrency - inFlight);
  }
  let windowStart = q.rateWindowStart;
  let windowCount = q.rateWindowCount;
  if (rateLimit !== null) {
    if (now >= windowStart + rateLimit.perMs) {
      windowStart = now;
      windowCount = 0;
    }
    const left = rateLimit.max - windowCount;
    if (left < allowed) {
      allowed = left;
      rateRetryAt = windowStart + rateLimit.perMs;
    }
  }

  const messages: ClaimedRow[] = [];
  if (allowed > 0) {
    const expiresAt = now + params.leaseMs;
    const rows = ctx
      .stmt(
        // Purpose: the next claimable messages, in claim order. Params: queue, limit. Result: the messages.
        `SELECT id, payload, headers, attempts, max_attempts, priority, ordering_key, idempotency_key,
                correlation_id, causation_id, enqueued_at
           FROM sluice_messages WHERE queue = ? AND state = 0
          ORDER BY priority DESC, run_at, id LIMIT ?`,
      )
      .raw()
      .all(params.queue, allowed) as ClaimRowRaw[];
    if (rows.length > 0) {
      // Each lease token is a fresh random prefix and the message id: unique per claim.
      const prefix = `${newLeaseToken()}.`;
      ctx
        .stmt(
          // Purpose: take the leases of the rows just read (the write lock is held, so they are
          // still ready): attempt counted now. A SELECT then an UPDATE by id is cheaper than one
          // UPDATE ... RETURNING, which materialises its whole output first.
          // Params: token prefix, expiry, JSON array of ids.
          `UPDATE sluice_messages SET state = 3, attempts = attempts + 1, lease_token = ? || id, lease_expires_at = ?
            WHERE id IN (SELECT value FROM json_each(?))`,
        )
        .run(prefix, expiresAt, JSON.stringify(rows.map((r) => r[0])));
      for (const r of rows) {
        const id = String(r[0]);
        messages.push({
          id,
          queue: params.queue,
          payload: r[1],
          headers: r[2],
          attempt: r[3] + 1,
          maxAttempts: r[4] ?? q.config.maxAttempts,
          priority: r[5],
          orderingKey: r[6],
          idempotencyKey: r[7],
          correlationId: r[8] ?? id,
          causationId: r[9],
          enqueuedAt: r[10],
          leaseToken: prefix + id,
          leaseExpiresAt: expiresAt,
        });
      }
    }
  }
  if (rateLimit !== null) {
    ctx
      .stmt(
        // Purpose: record claims in the rate window. Params: window start, count, queue.
        'UPDATE sluice_queues SET rate_window_start = ?, rate_window_count = ? WHERE name = ?',
      )
      .run(windowStart, windowCount + messages.length, params.queue);
  }

  let retryAt: number | null = null;
  if (messages.length < params.max) {
    retryAt = ctx
      .stmt(
        // Purpose: when the next delayed message is due. Params: queue. Result: run_at or null.
        'SELECT min(run_at) FROM sluice_messages WHERE queue = ? AND state = 1',
      )
      .pluck()
      .get(params.queue) as number | null;
    if (rateRetryAt !== null && messages.length === allowed) {
      retryAt = retryAt === null ? rateRetryAt : Math.min(retryAt, rateRetryAt);
    }
  }
  return { messages, retryAt, paused: false };
}
