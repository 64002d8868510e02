import type { DeadReason, MessageState } from './message-state.js';

/** Message headers: string keys to string values. */
export type Headers = Record<string, string>;

/** A message as a consumer sees it. */
export interface Message<T = unknown> {
  /** Store-assigned id, increasing in send order; never reused. */
  id: string;
  queue: string;
  payload: T;
  headers: Headers;
  /** This delivery's attempt number, from 1; counted when the lease was taken. */
  attempt: number;
  /** Attempts allowed before the message is dead-lettered. */
  maxAttempts: number;
  priority: number;
  idempotencyKey: string | null;
  orderingKey: string | null;
  /** Shared by every message in one causal chain; a root message's is its own id. */
  correlationId: string;
  /** The id of the message whose handler sent this one, if any. */
  causationId: string | null;
  /** When the message was first sent. */
  enqueuedAt: Date;
}

/** A message held under a lease; only the current `leaseToken` can settle it. */
export interface LeasedMessage<T = unknown> extends Message<T> {
  leaseToken: string;
  /** When the lease runs out unless extended. */
  leaseExpiresAt: Date;
}

/** One failed attempt, as kept in a message's error history (the last 20 are kept). */
export interface AttemptError {
  attempt: number;
  error: string;
  at: Date;
}

/** A message in any state, as inspection shows it. */
export interface MessageInfo<T = unknown> extends Message<T> {
  state: MessageState;
  /** Attempts already taken (the next delivery is `attempts + 1`). */
  attempts: number;
  runAt: Date;
  errors: AttemptError[];
  deadReason: DeadReason | null;
  /** When it was acked (retained) or dead-lettered. */
  finishedAt: Date | null;
}

/** A dead-lettered message with its error history. */
export interface DeadLetter<T = unknown> extends MessageInfo<T> {
  state: 'dead';
  deadReason: DeadReason;
  finishedAt: Date;
}
