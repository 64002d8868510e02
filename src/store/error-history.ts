/**
 * The error history every driver keeps on a message: a JSON array of
 * `{ attempt, error, at }`, newest last, bounded in length and in text size so
 * a poison message cannot grow its row without limit. Pure, so both stores
 * write the same format.
 */

/** Error history kept per message. */
const ERROR_HISTORY = 20;
/** Longest error text kept. */
const ERROR_MAX_CHARS = 4_000;

/** Cuts an error text to the length a store keeps. */
export function truncateError(error: string): string {
  return error.length > ERROR_MAX_CHARS ? `${error.slice(0, ERROR_MAX_CHARS)}…` : error;
}

/** Appends one failure to a message's JSON error history, keeping the last few. */
export function appendError(history: string | null, attempt: number, error: string, now: number): string {
  const list = history === null ? [] : (JSON.parse(history) as unknown[]);
  list.push({ attempt, error: truncateError(error), at: now });
  return JSON.stringify(list.length > ERROR_HISTORY ? list.slice(-ERROR_HISTORY) : list);
}
