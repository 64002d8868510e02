/**
 * Per-key ordering across processes. Whether an ordering key is busy, and which
 * message of a key runs next, are decided while holding a transaction-scoped
 * advisory lock on the key: inserting a keyed message, settling the head of a
 * key and redriving a keyed dead letter all take it, so "is the key busy" and
 * "promote the next" never race. Locks are taken in ascending id order within
 * a statement, so two transactions taking several never deadlock each other.
 *
 * Keys are hashed into a fixed number of stripes per queue: a batch with
 * thousands of distinct keys takes at most that many locks (PostgreSQL's lock
 * table is shared and finite), at the price of unrelated keys occasionally
 * waiting for each other for one short transaction.
 */
import { createHash } from 'node:crypto';
import type { PgContext, PgSession } from './postgres-context.js';

/** Lock stripes per queue for ordering keys. */
const KEY_STRIPES = 64;

/** A queue and one of its ordering keys. */
export interface QueueKey {
  queue: string;
  key: string;
}

/** The lock id guarding an ordering key. */
export function orderingKeyLockId(ctx: PgContext, queue: string, key: string): string {
  const stripe = createHash('sha1').update(key).digest().readUInt32BE(0) % KEY_STRIPES;
  return ctx.lockId('ordering-key', queue, String(stripe));
}

/** The lock id that makes maxDepth checks of a queue exact (held by inserters of bounded queues). */
export function depthLockId(ctx: PgContext, queue: string): string {
  return ctx.lockId('depth', queue);
}

/** Takes advisory locks until the transaction ends, each id once, in ascending order. */
export async function takeLocks(db: PgSession, ids: Iterable<string>): Promise<void> {
  const sorted = [...new Set(ids)].map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (sorted.length === 0) return;
  await db.rows(
    // Purpose: take transaction-scoped advisory locks in the order given (ascending).
    // Params: $1 lock ids. Result: one empty row per lock.
    'SELECT pg_advisory_xact_lock(id) FROM unnest($1::int8[]) AS id',
    [sorted.map(String)],
  );
}

/** Locks the ordering keys of `pairs`. */
export function lockOrderingKeys(db: PgSession, pairs: Iterable<QueueKey>): Promise<void> {
  const ids: string[] = [];
  for (const p of pairs) ids.push(orderingKeyLockId(db.ctx, p.queue, p.key));
  return takeLocks(db, ids);
}

/**
 * After the head of each key was acked, dead-lettered or removed, the first
 * live message of the key (in id order) becomes ready, or delayed if its
 * run-at is ahead — if it is waiting. The caller holds the keys' locks and has
 * already removed the old heads in this transaction.
 */
export async function promoteNextOfKeys(db: PgSession, pairs: QueueKey[]): Promise<void> {
  if (pairs.length === 0) return;
  const rows = await db.rows<{ queue: string }>(
    // Purpose: release the next waiting message of each key. Params: $1 queues, $2 keys.
    // Result: the queue of each message made ready or delayed.
    `UPDATE {schema}.sluice_messages m
        SET state = CASE WHEN m.run_at > statement_timestamp() THEN 1 ELSE 0 END
       FROM unnest($1::text[], $2::text[]) AS k(queue, key)
      CROSS JOIN LATERAL (
        SELECT x.id FROM {schema}.sluice_messages x
         WHERE x.queue = k.queue AND x.ordering_key = k.key AND x.state < 4
         ORDER BY x.id LIMIT 1
      ) AS next
      WHERE m.id = next.id AND m.state = 2
     RETURNING m.queue`,
    [pairs.map((p) => p.queue), pairs.map((p) => p.key)],
  );
  for (const r of rows) db.wake.add(r.queue);
}
