/**
 * Time comes in through a Clock so tests can control it and so the core never
 * reads the wall clock itself.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The process's wall clock. */
export const systemClock: Clock = { now: () => Date.now() };
