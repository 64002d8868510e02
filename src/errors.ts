/**
 * Every error Sluice throws on purpose is a {@link SluiceError} with a stable
 * `code`. Codes never change meaning once released; `docs/errors.md` lists them
 * and a test keeps that list and this file in step.
 */

/** Stable error codes, one per failure a caller can act on. */
export const ErrorCode = {
  InvalidArgument: 'SLUICE_INVALID_ARGUMENT',
  InvalidQueueName: 'SLUICE_INVALID_QUEUE_NAME',
  PayloadTooLarge: 'SLUICE_PAYLOAD_TOO_LARGE',
  PayloadNotJson: 'SLUICE_PAYLOAD_NOT_JSON',
  QueueFull: 'SLUICE_QUEUE_FULL',
  LeaseLost: 'SLUICE_LEASE_LOST',
  MessageNotFound: 'SLUICE_MESSAGE_NOT_FOUND',
  Unrecoverable: 'SLUICE_UNRECOVERABLE',
  Closed: 'SLUICE_CLOSED',
  Unsupported: 'SLUICE_UNSUPPORTED',
  InvalidUrl: 'SLUICE_INVALID_URL',
  StoreUnavailable: 'SLUICE_STORE_UNAVAILABLE',
  HandlerTimeout: 'SLUICE_HANDLER_TIMEOUT',
  SchemaTooNew: 'SLUICE_SCHEMA_TOO_NEW',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error Sluice raises deliberately. */
export class SluiceError extends Error {
  /** Stable, documented code; match on this, not on the message text. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An argument or option has the wrong type, range or shape. */
export class ValidationError extends SluiceError {
  constructor(message: string) {
    super(ErrorCode.InvalidArgument, message);
  }
}

/** A queue or topic name does not match the allowed pattern. */
export class InvalidQueueNameError extends SluiceError {
  constructor(message: string) {
    super(ErrorCode.InvalidQueueName, message);
  }
}

/** The JSON-encoded payload is bigger than the configured limit. */
export class PayloadTooLargeError extends SluiceError {
  readonly sizeBytes: number;
  readonly limitBytes: number;

  constructor(sizeBytes: number, limitBytes: number) {
    super(
      ErrorCode.PayloadTooLarge,
      `payload is ${sizeBytes} bytes once JSON-encoded; the limit is ${limitBytes} bytes. ` +
        'Store large data elsewhere and send a reference to it, or raise payloadLimitBytes.',
    );
    this.sizeBytes = sizeBytes;
    this.limitBytes = limitBytes;
  }
}

/** The payload cannot be represented as JSON (undefined, a function, a BigInt, a cycle...). */
export class PayloadNotJsonError extends SluiceError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.PayloadNotJson, message, { cause });
  }
}

/**
 * A send would take the queue past its `maxDepth`. Nothing was enqueued.
 * `retryAfterMs` is a hint of when capacity is likely to be free again.
 */
export class QueueFullError extends SluiceError {
  readonly queue: string;
  readonly retryAfterMs: number;

  constructor(queue: string, maxDepth: number, retryAfterMs: number) {
    super(
      ErrorCode.QueueFull,
      `queue "${queue}" is full (maxDepth ${maxDepth}); nothing was enqueued. ` +
        `Retry after about ${retryAfterMs} ms, add workers, or raise maxDepth.`,
    );
    this.queue = queue;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The lease token is not the message's current one: the lease expired, another
 * consumer holds the message now, or it was already acknowledged. Nothing changed.
 */
export class LeaseLostError extends SluiceError {
  readonly messageId: string;

  constructor(messageId: string) {
    super(
      ErrorCode.LeaseLost,
      `lease on message ${messageId} is no longer held (expired, taken by another consumer, or already settled); nothing was changed`,
    );
    this.messageId = messageId;
  }
}

/** No message with that id exists in the place it was looked for. */
export class MessageNotFoundError extends SluiceError {
  constructor(message: string) {
    super(ErrorCode.MessageNotFound, message);
  }
}

/**
 * Throw this from a handler when retrying cannot help (malformed input, a
 * deleted record): the message goes to dead letters at once with this error.
 */
export class UnrecoverableError extends SluiceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Unrecoverable, message, options);
  }
}

/** The Sluice instance, worker or store was closed. */
export class ClosedError extends SluiceError {
  constructor(what: string) {
    super(ErrorCode.Closed, `${what} is closed`);
  }
}

/** The store in use cannot do this (for example a transactional send on SQLite). */
export class UnsupportedError extends SluiceError {
  constructor(message: string) {
    super(ErrorCode.Unsupported, message);
  }
}

/** The connection URL or open options cannot be understood. */
export class InvalidUrlError extends SluiceError {
  constructor(message: string) {
    super(ErrorCode.InvalidUrl, message);
  }
}

/** The store could not be reached or failed (disk full, database down). */
export class StoreUnavailableError extends SluiceError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.StoreUnavailable, message, { cause });
  }
}

/** A handler ran longer than its `timeoutMs`; the attempt counts as failed. */
export class HandlerTimeoutError extends SluiceError {
  constructor(timeoutMs: number) {
    super(ErrorCode.HandlerTimeout, `handler did not finish within ${timeoutMs} ms`);
  }
}

/** The database was written by a newer Sluice than this one. */
export class SchemaTooNewError extends SluiceError {
  constructor(found: number, known: number) {
    super(
      ErrorCode.SchemaTooNew,
      `the store's schema is at version ${found} but this Sluice knows only up to ${known}; upgrade Sluice`,
    );
  }
}
