import { AsyncLocalStorage } from 'node:async_hooks';

/** What a handler's code inherits when it sends: set around every handler call. */
export interface MessageScope {
  messageId: string;
  correlationId: string;
}

/**
 * Carries the message being handled through every await of its handler, so a
 * plain `sluice.send` inside a handler passes the correlation id on and records
 * the handled message as the cause, without the handler threading them through.
 */
export const messageScope = new AsyncLocalStorage<MessageScope>();
