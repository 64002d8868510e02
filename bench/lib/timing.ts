import { performance } from 'node:perf_hooks';

/**
 * Wall-clock time in epoch milliseconds with sub-millisecond precision. Every
 * process on the machine reads the same clock, so a send time taken in one
 * process can be subtracted from a handler-start time taken in another.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Sleeps until the epoch time `at` (returns at once if it has passed). */
export function sleepUntil(at: number): Promise<void> {
  return sleep(at - now());
}

/** Forces full garbage collections when the process runs with --expose-gc. */
export async function settleGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(50);
  }
}
