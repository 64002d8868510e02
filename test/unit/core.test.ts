import { describe, expect, it } from 'vitest';
import { BatchQueue } from '../../src/client/batch-queue.js';
import { backoffDelayMs, DEFAULT_BACKOFF, parseBackoff } from '../../src/core/backoff.js';
import { planFailure } from '../../src/core/failure-plan.js';
import { matchesHeaderFilter, parseHeaderFilter } from '../../src/core/header-filter.js';
import { assertQueueName } from '../../src/core/names.js';
import { encodePayload } from '../../src/core/payload.js';
import { applyQueueConfig, DEFAULT_QUEUE_CONFIG } from '../../src/core/queue-config.js';
import { ValidationError } from '../../src/errors.js';

describe('backoff', () => {
  it('grows exponentially up to the cap, with full jitter in [0, ceiling]', () => {
    const policy = { baseMs: 100, factor: 2, maxMs: 1_000, jitter: 'none' as const };
    expect([1, 2, 3, 4, 5, 10].map((a) => backoffDelayMs(policy, a, Math.random))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    const full = { ...policy, jitter: 'full' as const };
    expect(backoffDelayMs(full, 3, () => 0)).toBe(0);
    expect(backoffDelayMs(full, 3, () => 0.999999)).toBe(400);
    expect(backoffDelayMs(full, 1_000, () => 0.5)).toBe(500);
  });

  it('validates policies and fills in defaults', () => {
    expect(parseBackoff({ baseMs: 5 }, 'backoff')).toEqual({ ...DEFAULT_BACKOFF, baseMs: 5 });
    expect(() => parseBackoff({ factor: 0.5 }, 'backoff')).toThrow(ValidationError);
    expect(() => parseBackoff({ base: 5 }, 'backoff')).toThrow(/backoff.base is not a backoff option/);
  });

  it('plans a retry while attempts remain, else dead-letters', () => {
    const facts = {
      attempt: 2,
      maxAttempts: 3,
      backoff: DEFAULT_BACKOFF,
      requestedDelayMs: undefined,
      permanent: undefined,
    };
    expect(planFailure(facts, () => 0)).toEqual({ retry: true, delayMs: 0 });
    expect(planFailure({ ...facts, requestedDelayMs: 7 }, () => 0)).toEqual({ retry: true, delayMs: 7 });
    expect(planFailure({ ...facts, attempt: 3 }, () => 0)).toEqual({ retry: false, reason: 'max_attempts' });
    expect(planFailure({ ...facts, permanent: 'unrecoverable' }, () => 0)).toEqual({
      retry: false,
      reason: 'unrecoverable',
    });
  });
});

describe('queue configuration', () => {
  it('applies partial changes and rejects unknown or bad options', () => {
    const c = applyQueueConfig(DEFAULT_QUEUE_CONFIG, { maxDepth: 10, rateLimit: { max: 5, perMs: 1000 } });
    expect(c).toMatchObject({ maxDepth: 10, rateLimit: { max: 5, perMs: 1000 }, maxAttempts: 5 });
    expect(applyQueueConfig(c, { maxDepth: null }).maxDepth).toBeNull();
    expect(() => applyQueueConfig(c, { maxDepth: -1 })).toThrow(/maxDepth must be a whole number/);
    expect(() => applyQueueConfig(c, { onFull: 'drop' })).toThrow(/onFull/);
    expect(() => applyQueueConfig(c, [])).toThrow(ValidationError);
  });
});

describe('names, payloads and filters', () => {
  it('accepts strict names only', () => {
    for (const ok of ['email', 'order.placed', 'a', 'Q-1_x:y', 'x'.repeat(128)])
      expect(() => assertQueueName(ok)).not.toThrow();
    for (const bad of ['', '-x', '.x', 'a b', 'a/b', 'x'.repeat(129), '../etc', 'é', '__proto__', 5, null]) {
      expect(() => assertQueueName(bad), String(bad)).toThrow();
    }
  });

  it('encodes JSON and enforces the byte limit', () => {
    expect(encodePayload({ a: 1 }, 100)).toBe('{"a":1}');
    expect(() => encodePayload('é'.repeat(60), 100)).toThrow(/limit is 100 bytes/);
    expect(() => encodePayload(Symbol('x'), 100)).toThrow(/cannot be encoded/);
  });

  it('matches header filters by equality and any-of', () => {
    const f = parseHeaderFilter({ region: ['eu', 'us'], tier: 'gold' });
    expect(matchesHeaderFilter(f, { region: 'eu', tier: 'gold', x: 'y' })).toBe(true);
    expect(matchesHeaderFilter(f, { region: 'ap', tier: 'gold' })).toBe(false);
    expect(matchesHeaderFilter(f, null)).toBe(false);
    expect(matchesHeaderFilter({}, null)).toBe(true);
    expect(() => parseHeaderFilter({ a: [] })).toThrow(ValidationError);
  });
});

describe('BatchQueue (group commit)', () => {
  it('gathers items added in the same moment into one flush and returns each its result', async () => {
    const flushes: number[][] = [];
    const q = new BatchQueue<number, number>(
      async (items) => {
        flushes.push(items);
        return items.map((i) => i * 10);
      },
      { concurrency: 1, maxWeight: 100 },
    );
    const results = await Promise.all([1, 2, 3].map((i) => q.add(i)));
    expect(results).toEqual([10, 20, 30]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });

  it('items arriving during a flush go together in the next, within the weight limit', async () => {
    const flushes: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const q = new BatchQueue<number, number>(
      async (items) => {
        flushes.push(items);
        if (flushes.length === 1) await gate;
        return items;
      },
      { concurrency: 1, maxWeight: 3 },
    );
    const first = q.add(0);
    await new Promise((r) => setImmediate(r));
    const rest = [1, 2, 3, 4, 5].map((i) => q.add(i));
    release();
    await Promise.all([first, ...rest]);
    expect(flushes).toEqual([[0], [1, 2, 3], [4, 5]]);
  });

  it('a failed flush rejects every item in it, and later items still go through', async () => {
    let fail = true;
    const q = new BatchQueue<number, number>(
      async (items) => {
        if (fail) {
          fail = false;
          throw new Error('disk full');
        }
        return items;
      },
      { concurrency: 1, maxWeight: 100 },
    );
    const failed = await Promise.allSettled([q.add(1), q.add(2)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(q.add(3)).resolves.toBe(3);
    await q.idle();
  });

  it('callback items share flushes with promise items, and get the error of a failed flush', async () => {
    const flushes: number[][] = [];
    const q = new BatchQueue<number, number>(
      async (items) => {
        flushes.push(items);
        if (items.includes(-1)) throw new Error('disk full');
        return items.map((i) => i + 1);
      },
      { concurrency: 1, maxWeight: 100 },
    );
    const calls: [unknown, number | undefined][] = [];
    q.addWith(1, 1, (error, result) => calls.push([error, result]));
    const viaPromise = q.add(2);
    q.addWith(3, 1, (error, result) => calls.push([error, result]));
    expect(await viaPromise).toBe(3);
    await q.idle();
    expect(calls).toEqual([
      [undefined, 2],
      [undefined, 4],
    ]);
    expect(flushes).toEqual([[1, 2, 3]]);
    const failed = new Promise<[unknown, number | undefined]>((resolve) =>
      q.addWith(-1, 1, (error, result) => resolve([error, result])),
    );
    const [error, result] = await failed;
    expect((error as Error).message).toBe('disk full');
    expect(result).toBeUndefined();
  });
});
