import { type BackoffPolicy, backoffDelayMs } from './backoff.js';
import type { DeadReason } from './message-state.js';

/** What happens to a message whose attempt failed. */
export type FailurePlan = { retry: true; delayMs: number } | { retry: false; reason: DeadReason };

/** Everything needed to decide; gathered by a store driver from the message and its queue. */
export interface FailureFacts {
  /** The attempt that failed (1-based; counted when the lease was taken). */
  attempt: number;
  maxAttempts: number;
  /** The message's own backoff, else its queue's. */
  backoff: BackoffPolicy;
  /** A delay the caller asked for; overrides the backoff. */
  requestedDelayMs: number | undefined;
  /** Set when the failure must not be retried, with the reason. */
  permanent: DeadReason | undefined;
}

/**
 * Retry with backoff while attempts remain, otherwise dead-letter. Shared by
 * every store driver so both stores decide identically.
 */
export function planFailure(facts: FailureFacts, random: () => number): FailurePlan {
  if (facts.permanent !== undefined) return { retry: false, reason: facts.permanent };
  if (facts.attempt >= facts.maxAttempts) return { retry: false, reason: 'max_attempts' };
  const delayMs = facts.requestedDelayMs ?? backoffDelayMs(facts.backoff, facts.attempt, random);
  return { retry: true, delayMs };
}
