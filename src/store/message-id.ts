/**
 * Message ids are positive integers assigned by the store, handed out as
 * decimal strings so that ids past 2^53 (PostgreSQL bigint) stay exact.
 */
const ID_PATTERN = /^[1-9][0-9]{0,18}$/;

/** True when `id` has the shape of a message id. */
export function isMessageId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** Orders two message ids numerically: decimal without leading zeros, so the shorter is the smaller. */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
