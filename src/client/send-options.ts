import type { BackoffPolicy } from '../core/backoff.js';
import { parseBackoff } from '../core/backoff.js';
import type { Headers } from '../core/message.js';
import { assertQueueName } from '../core/names.js';
import { encodePayload } from '../core/payload.js';
import { positiveInt } from '../core/queue-config.js';
import { ValidationError } from '../errors.js';
import type { NewMessage } from '../store/store.js';
import { messageScope } from './message-context.js';

/** Options of `send`, `sendMany` items and `publish`. Every one is optional. */
export interface SendOptions {
  /** Sending the same key to the same queue within its dedup window (default 24 h) stores nothing new and returns the first id with `duplicate: true`. */
  idempotencyKey?: string;
  /** Messages with the same key are delivered one at a time, in send order. */
  orderingKey?: string;
  /** Deliver no sooner than this many milliseconds from now. Default 0. */
  delayMs?: number;
  /** Deliver no sooner than this time; wins over `delayMs`. */
  runAt?: Date | number;
  /** Higher is claimed first. Default 0; an integer from -1,000,000 to 1,000,000. */
  priority?: number;
  /** Overrides the queue's `maxAttempts` for this message. */
  maxAttempts?: number;
  /** Overrides the queue's backoff for this message. */
  backoff?: Partial<BackoffPolicy>;
  /** String metadata, matched by subscription filters. At most 64 entries. */
  headers?: Headers;
  /** Defaults to the handled message's when sent from a handler, else to the new message's own id. */
  correlationId?: string;
  /** Defaults to the handled message's id when sent from a handler. */
  causationId?: string;
  /**
   * PostgreSQL only: an open transaction (a `pg` client inside BEGIN) to send in,
   * so the message exists if and only if that transaction commits.
   */
  tx?: unknown;
}

const SEND_OPTION_KEYS = new Set([
  'idempotencyKey',
  'orderingKey',
  'delayMs',
  'runAt',
  'priority',
  'maxAttempts',
  'backoff',
  'headers',
  'correlationId',
  'causationId',
  'tx',
]);
const MAX_KEY_CHARS = 256;
const MAX_HEADERS = 64;
const MAX_HEADER_NAME_CHARS = 128;
const MAX_HEADER_VALUE_CHARS = 4_096;
const MAX_PRIORITY = 1_000_000;
/** Delays past ten years are almost certainly a unit mistake (seconds vs milliseconds). */
const MAX_DELAY_MS = 10 * 365 * 86_400_000;

/**
 * Validates one message and encodes it for the store. Runs on the caller's
 * side, before anything is batched, so a bad message fails alone and at once.
 */
export function buildMessage(
  queue: string | null,
  payload: unknown,
  options: SendOptions | undefined,
  payloadLimitBytes: number,
): NewMessage {
  if (queue !== null) assertQueueName(queue);
  const o = options ?? {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new ValidationError('send options must be an object, for example { delayMs: 1000 }');
  }
  for (const key of Object.keys(o)) {
    if (!SEND_OPTION_KEYS.has(key)) {
      throw new ValidationError(`"${key}" is not a send option; the options are ${[...SEND_OPTION_KEYS].join(', ')}`);
    }
  }
  const scope = messageScope.getStore();
  return {
    queue: queue ?? '',
    payload: encodePayload(payload, payloadLimitBytes),
    headers: o.headers === undefined ? null : encodeHeaders(o.headers),
    priority: o.priority === undefined ? 0 : priority(o.priority),
    delayMs: o.delayMs === undefined ? 0 : delay(o.delayMs),
    runAt: o.runAt === undefined ? null : runAt(o.runAt),
    maxAttempts: o.maxAttempts === undefined ? null : positiveInt(o.maxAttempts, 'maxAttempts'),
    backoff: o.backoff === undefined ? null : JSON.stringify(parseBackoff(o.backoff, 'backoff')),
    orderingKey: key(o.orderingKey, 'orderingKey'),
    idempotencyKey: key(o.idempotencyKey, 'idempotencyKey'),
    correlationId: key(o.correlationId, 'correlationId') ?? scope?.correlationId ?? null,
    causationId: key(o.causationId, 'causationId') ?? scope?.messageId ?? null,
  };
}

function key(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_CHARS) {
    throw new ValidationError(`${name} must be a non-empty string of at most ${MAX_KEY_CHARS} characters`);
  }
  return value;
}

function priority(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) > MAX_PRIORITY) {
    throw new ValidationError(`priority must be a whole number from -${MAX_PRIORITY} to ${MAX_PRIORITY}`);
  }
  return value;
}

function delay(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_DELAY_MS) {
    throw new ValidationError('delayMs must be a number of milliseconds from 0 to ten years');
  }
  return Math.floor(value);
}

function runAt(value: unknown): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new ValidationError('runAt must be a Date or a number of milliseconds since the epoch');
  }
  return Math.floor(ms);
}

function encodeHeaders(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('headers must be an object of string names to string values');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return null;
  if (entries.length > MAX_HEADERS) throw new ValidationError(`headers may have at most ${MAX_HEADERS} entries`);
  for (const [name, v] of entries) {
    if (name.length === 0 || name.length > MAX_HEADER_NAME_CHARS) {
      throw new ValidationError(`header names must be 1 to ${MAX_HEADER_NAME_CHARS} characters`);
    }
    if (typeof v !== 'string' || v.length > MAX_HEADER_VALUE_CHARS) {
      throw new ValidationError(`header "${name}" must be a string of at most ${MAX_HEADER_VALUE_CHARS} characters`);
    }
  }
  return JSON.stringify(Object.fromEntries(entries));
}
