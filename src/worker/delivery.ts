import type { LeasedMessage } from '../core/message.js';

/** One message held by a worker: buffered (leased, waiting for a slot) or running. */
export interface Delivery<T> {
  message: LeasedMessage<T>;
  /**
   * Made only when the handler reads `ctx.signal` (most never do, and an
   * AbortController costs microseconds per message); an abort before that is
   * remembered in `abortReason` and applied when the signal is made.
   */
  controller: AbortController | null;
  abortReason: unknown;
  leaseMs: number;
  /** When the lease ends by this process's clock (claim or last extension time + lease). */
  localExpiry: number;
  leaseLost: boolean;
  released: boolean;
  /** When the handler started, by this process's clock; 0 while buffered. */
  startedAt: number;
  /** Fails the running handler's attempt (set while it runs, used on timeout). */
  fail: ((error: unknown) => void) | null;
}

/** The handler's abort signal, made on first use. */
export function signalOf(entry: Delivery<unknown>): AbortSignal {
  if (entry.controller === null) {
    entry.controller = new AbortController();
    if (entry.abortReason !== undefined) entry.controller.abort(entry.abortReason);
  }
  return entry.controller.signal;
}

/** Aborts the delivery's signal now, or as soon as it is made. */
export function abort(entry: Delivery<unknown>, reason: unknown): void {
  if (entry.controller !== null) entry.controller.abort(reason);
  else if (entry.abortReason === undefined) entry.abortReason = reason;
}

/** The text kept in a message's error history: name, message and the top of the stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const stack = error.stack?.split('\n').slice(0, 6).join('\n');
    return stack ?? `${error.name}: ${error.message}`;
  }
  try {
    return `non-Error thrown: ${JSON.stringify(error)}`;
  } catch {
    return `non-Error thrown: ${String(error)}`;
  }
}
