import type { AttemptError, DeadLetter, Headers, LeasedMessage, MessageInfo } from '../core/message.js';
import type { ClaimedRow, MessageRow } from '../store/store.js';

const NO_HEADERS: Headers = Object.freeze({}) as Headers;

/** A claimed row as the consumer sees it. */
export function leasedMessage<T>(row: ClaimedRow): LeasedMessage<T> {
  return {
    id: row.id,
    queue: row.queue,
    payload: JSON.parse(row.payload) as T,
    headers: row.headers === null ? NO_HEADERS : (JSON.parse(row.headers) as Headers),
    attempt: row.attempt,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    idempotencyKey: row.idempotencyKey,
    orderingKey: row.orderingKey,
    correlationId: row.correlationId,
    causationId: row.causationId,
    enqueuedAt: new Date(row.enqueuedAt),
    leaseToken: row.leaseToken,
    leaseExpiresAt: new Date(row.leaseExpiresAt),
  };
}

/** A stored row in any state, for inspection. */
export function messageInfo<T>(row: MessageRow): MessageInfo<T> {
  const errors =
    row.errors === null ? [] : (JSON.parse(row.errors) as { attempt: number; error: string; at: number }[]);
  return {
    id: row.id,
    queue: row.queue,
    state: row.state,
    payload: JSON.parse(row.payload) as T,
    headers: row.headers === null ? {} : (JSON.parse(row.headers) as Headers),
    attempt: row.attempts,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    idempotencyKey: row.idempotencyKey,
    orderingKey: row.orderingKey,
    correlationId: row.correlationId,
    causationId: row.causationId,
    enqueuedAt: new Date(row.enqueuedAt),
    runAt: new Date(row.runAt),
    errors: errors.map((e): AttemptError => ({ attempt: e.attempt, error: e.error, at: new Date(e.at) })),
    deadReason: row.deadReason,
    finishedAt: row.finishedAt === null ? null : new Date(row.finishedAt),
  };
}

/** A dead-lettered row; the store guarantees its dead fields are set. */
export function deadLetter<T>(row: MessageRow): DeadLetter<T> {
  return messageInfo<T>(row) as DeadLetter<T>;
}
