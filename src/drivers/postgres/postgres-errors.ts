/**
 * The one place PostgreSQL failures become Sluice errors. A failure that
 * comes from the database or the network becomes a StoreUnavailableError
 * saying what happened and what Sluice will do; a caller's own error (thrown
 * by a handler inside a transaction) and Sluice's own errors pass through.
 */
import { SluiceError, StoreUnavailableError } from '../../errors.js';

/** Node network error codes that mean "the server cannot be reached or went away". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Messages `pg` uses for a connection it lost or could not open, without a code. */
const LOST_CONNECTION =
  /Connection terminated|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect|connection timeout/i;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True when the error came from PostgreSQL (it has a SQLSTATE) or from the connection to it. */
export function isDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof SluiceError) return false;
  const code = codeOf(error);
  return (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) || isConnectionError(error);
}

/**
 * The connection is unusable or the server is not serving: network failures,
 * SQLSTATE class 08 (connection exception), 57P01-57P03 (terminated by an
 * administrator, crash shutdown, starting up or shutting down), 53300 (too
 * many connections).
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = codeOf(error);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || code.startsWith('08') || code === '53300') return true;
    if (code === '57P01' || code === '57P02' || code === '57P03') return true;
  }
  return LOST_CONNECTION.test(error.message);
}

/**
 * The statement never left this process: `pg` refuses queries on a client
 * whose connection already failed or was closed. Safe to run again anywhere.
 */
export function isUnsentError(error: unknown): boolean {
  return error instanceof Error && /is not queryable/.test(error.message);
}

/** A serialization failure or deadlock: the server rolled the transaction back, so it may be run again. */
export function isTransientConflict(error: unknown): boolean {
  const code = codeOf(error);
  return code === '40001' || code === '40P01';
}

/** Turns database failures into StoreUnavailableError; anything else is returned as it is. */
export function toStoreError(error: unknown, what: string, note?: string): unknown {
  if (!isDatabaseError(error)) return error;
  const e = error as Error;
  const code = codeOf(e);
  const detail = `${e.message}${code === undefined ? '' : ` (${code})`}`;
  const hint = /timeout exceeded when trying to connect/i.test(e.message)
    ? 'no connection became free in time: PostgreSQL is unreachable, or every pooled connection is busy (raise poolSize)'
    : isConnectionError(e)
      ? 'PostgreSQL cannot be reached or closed the connection; Sluice reconnects on its own when it is back'
      : 'PostgreSQL refused the statement';
  return new StoreUnavailableError(`${what}: ${hint}: ${detail}${note === undefined ? '' : `. ${note}`}`, e);
}
