import { ValidationError } from '../errors.js';

/**
 * Exponential backoff: attempt n (1-based, the attempt that just failed) waits
 * `min(maxMs, baseMs * factor^(n-1))`, and with full jitter a uniformly random
 * time between 0 and that, so that many failing messages do not retry in step.
 */
export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. Default 1,000 ms. */
  baseMs: number;
  /** Growth per attempt. Default 2. */
  factor: number;
  /** Upper bound of any delay. Default 300,000 ms (5 minutes). */
  maxMs: number;
  /** `'full'` (default) picks uniformly in [0, delay]; `'none'` waits exactly delay. */
  jitter: 'full' | 'none';
}

/** Defaults used when neither the message nor the queue sets a policy. */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({
  baseMs: 1_000,
  factor: 2,
  maxMs: 300_000,
  jitter: 'full',
});

/** The delay before retrying after `attempt` failed. `random` returns [0, 1). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * policy.factor ** exponent);
  if (!Number.isFinite(ceiling)) return policy.maxMs;
  return policy.jitter === 'full' ? Math.floor(random() * (ceiling + 1)) : Math.floor(ceiling);
}

/** Checks and completes a partial policy; `path` names it in error messages. */
export function parseBackoff(input: unknown, path: string, base: BackoffPolicy = DEFAULT_BACKOFF): BackoffPolicy {
  if (input === undefined) return base;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError(`${path} must be an object like { baseMs: 1000, factor: 2, maxMs: 300000 }`);
  }
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!['baseMs', 'factor', 'maxMs', 'jitter'].includes(key)) {
      throw new ValidationError(`${path}.${key} is not a backoff option; use baseMs, factor, maxMs or jitter`);
    }
  }
  const policy: BackoffPolicy = {
    baseMs: nonNegative(raw.baseMs, `${path}.baseMs`, base.baseMs),
    factor: atLeastOne(raw.factor, `${path}.factor`, base.factor),
    maxMs: nonNegative(raw.maxMs, `${path}.maxMs`, base.maxMs),
    jitter: raw.jitter === undefined ? base.jitter : jitterMode(raw.jitter, `${path}.jitter`),
  };
  return policy;
}

function nonNegative(value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ValidationError(`${path} must be a finite number of milliseconds, 0 or more`);
  }
  return value;
}

function atLeastOne(value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1) {
    throw new ValidationError(`${path} must be a finite number, 1 or more`);
  }
  return value;
}

function jitterMode(value: unknown, path: string): 'full' | 'none' {
  if (value !== 'full' && value !== 'none') throw new ValidationError(`${path} must be "full" or "none"`);
  return value;
}
