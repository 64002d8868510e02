/** Public exports of Sluice: only what users import. */

export type { SluiceOptions, StoreLocation } from './client/open-options.js';
export type { DeadLetterFilterInput, DeadLetterSelection, QueueStats } from './client/queue-handle.js';
export { QueueHandle } from './client/queue-handle.js';
export type { SendOptions } from './client/send-options.js';
export type { NackOptions, ReceiveOptions, SendManyItem, SendResult } from './client/sluice.js';
export { Sluice } from './client/sluice.js';
export type { BackoffPolicy } from './core/backoff.js';
export type { Clock } from './core/clock.js';
export type { HeaderFilter } from './core/header-filter.js';
export type { AttemptError, DeadLetter, Headers, LeasedMessage, Message, MessageInfo } from './core/message.js';
export type { DeadReason, MessageState } from './core/message-state.js';
export type { OnFull, QueueConfig, QueueConfigInput, RateLimit } from './core/queue-config.js';
export { DEFAULT_QUEUE_CONFIG } from './core/queue-config.js';
export {
  ClosedError,
  ErrorCode,
  HandlerTimeoutError,
  InvalidQueueNameError,
  InvalidUrlError,
  LeaseLostError,
  MessageNotFoundError,
  PayloadNotJsonError,
  PayloadTooLargeError,
  QueueFullError,
  SchemaTooNewError,
  SluiceError,
  StoreUnavailableError,
  UnrecoverableError,
  UnsupportedError,
  ValidationError,
} from './errors.js';
export type { Logger } from './observe/logger.js';
export type { Store, StoreCapabilities, Subscription } from './store/store.js';
export { HandlerContext } from './worker/handler-context.js';
export type { Handler, WorkerOptions } from './worker/worker.js';
export { Worker } from './worker/worker.js';
