/**
 * Settling on SQLite: ack, retry, dead-letter, lease extension, release and
 * rescue of expired leases, inside the caller's BEGIN IMMEDIATE transaction.
 * Settling the head of an ordering key releases the next message of that key.
 */
import { parseBackoff } from '../../core/backoff.js';
import { planFailure } from '../../core/failure-plan.js';
import { type DeadReason, MessageStateCode as S } from '../../core/message-state.js';
import { appendError, truncateError } from '../../store/error-history.js';
import type { FinishItem, FinishResult, LeaseExtendResult, LeaseRef, LeaseRescueResult } from '../../store/store.js';
import {
  CounterDeltas,
  type QueueRowLite,
  queueRowEnsure,
  queueRowRead,
  type SqliteContext,
  type WakeSet,
} from './sqlite-context.js';

/**
 * After the head of an ordering key is acked or dead-lettered, the next message
 * with that key (in send order) becomes ready, or delayed if its run-at is ahead.
 */
function promoteNextOfKey(ctx: SqliteContext, queue: string, key: string, now: number, wake: WakeSet): void {
  const next = ctx
    .stmt(
      // Purpose: the next waiting message of a key. Params: queue, key. Result: id, run_at.
      `SELECT id, run_at FROM sluice_messages
        WHERE queue = ? AND ordering_key = ? AND state < 4 ORDER BY id LIMIT 1`,
    )
    .raw()
    .get(queue, key) as [number, number] | undefined;
  if (next === undefined) return;
  ctx
    .stmt(
      // Purpose: release a waiting message; a no-op when the first live one is not waiting. Params: state, id.
      'UPDATE sluice_messages SET state = ? WHERE id = ? AND state = 2',
    )
    .run(next[1] > now ? S.delayed : S.ready, next[0]);
  wake.add(queue);
}

type FinishRowRaw = [
  number, // id
  string, // queue
  number, // state
  number, // attempts
  number | null, // max_attempts
  string | null, // backoff
  string | null, // ordering_key
  string | null, // lease_token
  number | null, // lease_expires_at
  string | null, // errors
];

export function finishMessages(ctx: SqliteContext, items: FinishItem[], wake: WakeSet): FinishResult[] {
  const now = ctx.clock.now();
  const queues = new Map<string, QueueRowLite>();
  const counters = new CounterDeltas();
  const rows = new Map<number, FinishRowRaw>();
  for (const r of ctx
    .stmt(
      // Purpose: the messages being settled, to check their leases; one read for the batch.
      // Params: JSON array of ids. Result: one row per id that exists.
      `SELECT id, queue, state, attempts, max_attempts, backoff, ordering_key, lease_token, lease_expires_at, errors
         FROM sluice_messages WHERE id IN (SELECT value FROM json_each(?))`,
    )
    .raw()
    .all(JSON.stringify(items.map((i) => Number(i.id)))) as FinishRowRaw[]) {
    rows.set(r[0], r);
  }
  const deletions: number[] = [];
  // Promotions wait until the settled heads are gone, so "the next live message" is the next one.
  const released: [string, string][] = [];
  const results = items.map((item): FinishResult => {
    const id = Number(item.id);
    const row = rows.get(id);
    if (row === undefined || !holdsLease(row[2], row[7], row[8], item.leaseToken, now)) {
      return { ok: false, reason: 'lease_lost' };
    }
    rows.delete(id); // the same lease cannot settle twice in one batch
    const [, queue, , attempts, maxAttempts, backoff, orderingKey, , , errors] = row;
    let q = queues.get(queue);
    if (q === undefined) {
      q = queueRowRead(ctx, queue) ?? queueRowEnsure(ctx, queue, now);
      queues.set(queue, q);
    }
    if (q.config.globalConcurrency !== null) wake.add(queue);
    const outcome = item.outcome;
    if (outcome.kind === 'ack') {
      if (q.config.retentionMs > 0) {
        ctx
          .stmt(
            // Purpose: keep an acked message for inspection. Params: now, id.
            `UPDATE sluice_messages SET state = 5, finished_at = ?, lease_token = NULL, lease_expires_at = NULL
              WHERE id = ?`,
          )
          .run(now, id);
      } else {
        deletions.push(id);
      }
      counters.add(queue, -1, 0, 1, 0, 0);
      if (orderingKey !== null) released.push([queue, orderingKey]);
      return { ok: true, state: q.config.retentionMs > 0 ? 'completed' : 'deleted' };
    }
    const history = appendError(errors, attempts, outcome.error, now);
    const lastError = truncateError(outcome.error);
    let reason: DeadReason;
    if (outcome.kind === 'retry') {
      const plan = planFailure(
        {
          attempt: attempts,
          maxAttempts: maxAttempts ?? q.config.maxAttempts,
          backoff: backoff === null ? q.config.backoff : parseBackoff(JSON.parse(backoff), 'backoff'),
          requestedDelayMs: outcome.delayMs,
          permanent: undefined,
        },
        ctx.random,
      );
      if (plan.retry) {
        const state = plan.delayMs > 0 ? S.delayed : S.ready;
        ctx
          .stmt(
            // Purpose: schedule the next attempt. Params: state, run_at, last error, history, id.
            `UPDATE sluice_messages SET state = ?, run_at = ?, lease_token = NULL, lease_expires_at = NULL,
                    last_error = ?, errors = ? WHERE id = ?`,
          )
          .run(state, now + plan.delayMs, lastError, history, id);
        counters.add(queue, 0, 0, 0, 1, 0);
        wake.add(queue);
        return { ok: true, state: state === S.ready ? 'ready' : 'delayed' };
      }
      reason = plan.reason;
    } else {
      reason = outcome.reason;
    }
    deadLetter(ctx, id, reason, lastError, history, now);
    counters.add(queue, -1, 0, 0, 0, 1);
    if (orderingKey !== null) released.push([queue, orderingKey]);
    return { ok: true, state: 'dead' };
  });
  if (deletions.length > 0) {
    ctx
      .stmt(
        // Purpose: acked messages are done; the pipe forgets them. Params: JSON array of ids.
        'DELETE FROM sluice_messages WHERE id IN (SELECT value FROM json_each(?))',
      )
      .run(JSON.stringify(deletions));
  }
  for (const [queue, key] of released) promoteNextOfKey(ctx, queue, key, now, wake);
  counters.flush(ctx);
  return results;
}

/** Only the current token of an unexpired lease may settle or extend a message. */
function holdsLease(
  state: number,
  token: string | null,
  expiresAt: number | null,
  given: string,
  now: number,
): boolean {
  return state === S.inFlight && token === given && expiresAt !== null && expiresAt > now;
}

function deadLetter(
  ctx: SqliteContext,
  id: number,
  reason: DeadReason,
  lastError: string,
  history: string,
  now: number,
): void {
  ctx
    .stmt(
      // Purpose: park a message in dead letters. Params: reason, now, last error, history, id.
      `UPDATE sluice_messages SET state = 4, dead_reason = ?, finished_at = ?, lease_token = NULL,
              lease_expires_at = NULL, last_error = ?, errors = ? WHERE id = ?`,
    )
    .run(reason, now, lastError, history, id);
}

export function extendLeases(ctx: SqliteContext, items: LeaseRef[], leaseMs: number): LeaseExtendResult {
  const now = ctx.clock.now();
  const expiresAt = now + leaseMs;
  const extend = ctx.stmt(
    // Purpose: move a held lease's expiry. Params: new expiry, id, token, now. Result: changes = 1 if held.
    `UPDATE sluice_messages SET lease_expires_at = ?
      WHERE id = ? AND state = 3 AND lease_token = ? AND lease_expires_at > ?`,
  );
  return items.map((item) =>
    extend.run(expiresAt, Number(item.id), item.leaseToken, now).changes === 1 ? expiresAt : null,
  );
}

export function releaseLeases(ctx: SqliteContext, items: LeaseRef[], wake: WakeSet): boolean[] {
  const now = ctx.clock.now();
  const release = ctx.stmt(
    // Purpose: hand a message back unprocessed (shutdown); the attempt is given back.
    // Params: id, token, now. Result: its queue if the lease was held.
    `UPDATE sluice_messages SET state = 0, attempts = max(attempts - 1, 0), lease_token = NULL, lease_expires_at = NULL
      WHERE id = ? AND state = 3 AND lease_token = ? AND lease_expires_at > ?
      RETURNING queue`,
  );
  return items.map((item) => {
    const queue = release.pluck().get(Number(item.id), item.leaseToken, now) as string | undefined;
    if (queue === undefined) return false;
    wake.add(queue);
    return true;
  });
}

export function rescueExpiredLeases(ctx: SqliteContext, limit: number, wake: WakeSet): LeaseRescueResult {
  const now = ctx.clock.now();
  const rows = ctx
    .stmt(
      // Purpose: leases that ran out. Params: now, limit. Result: id, queue, attempts, max_attempts, key, errors.
      `SELECT id, queue, attempts, max_attempts, ordering_key, errors FROM sluice_messages
        WHERE state = 3 AND lease_expires_at <= ? LIMIT ?`,
    )
    .raw()
    .all(now, limit) as [number, string, number, number | null, string | null, string | null][];
  const counters = new CounterDeltas();
  const queues = new Map<string, QueueRowLite>();
  let requeued = 0;
  let deadLettered = 0;
  for (const [id, queue, attempts, maxAttempts, orderingKey, errors] of rows) {
    let q = queues.get(queue);
    if (q === undefined) {
      q = queueRowEnsure(ctx, queue, now);
      queues.set(queue, q);
    }
    const error = `lease expired on attempt ${attempts}: the consumer stopped, crashed or stalled without settling the message`;
    const history = appendError(errors, attempts, error, now);
    if (attempts >= (maxAttempts ?? q.config.maxAttempts)) {
      deadLetter(ctx, id, 'lease_expired', error, history, now);
      counters.add(queue, -1, 0, 0, 0, 1);
      if (orderingKey !== null) promoteNextOfKey(ctx, queue, orderingKey, now, wake);
      deadLettered += 1;
    } else {
      ctx
        .stmt(
          // Purpose: make a message with an expired lease claimable again. Params: last error, history, id.
          `UPDATE sluice_messages SET state = 0, lease_token = NULL, lease_expires_at = NULL, last_error = ?, errors = ?
            WHERE id = ?`,
        )
        .run(error, history, id);
      counters.add(queue, 0, 0, 0, 1, 0);
      wake.add(queue);
      requeued += 1;
    }
  }
  counters.flush(ctx);
  return { requeued, deadLettered, queues: [...wake] };
}
