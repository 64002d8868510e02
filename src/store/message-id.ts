/**
 * Message ids are positive integers assigned by the store, handed out as
 * decimal strings so that ids past 2^53 (PostgreSQL bigint) stay exact.
 */
const ID_PATTERN = /^[1-9][0-9]{0,18}$/;

/** True when `id` has the shape of a message id. */
export function isMessageId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}
