import { describe, expect, it } from 'vitest';
import { LoopYield, YIELD_AFTER_MS } from '../../src/drivers/sqlite/loop-yield.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('LoopYield (a run of synchronous store calls lets the event loop turn)', () => {
  it('goes on at once while the loop has turned within YIELD_AFTER_MS, and yields once it has not', async () => {
    let now = 1_000;
    const loop = new LoopYield(() => now);
    // Calls in one turn, up to just short of the limit: no pause.
    expect(loop.pause()).toBeNull();
    now += YIELD_AFTER_MS - 1;
    expect(loop.pause()).toBeNull();
    // The loop has not turned for YIELD_AFTER_MS: pause until it does.
    now += 1;
    const pause = loop.pause();
    expect(pause).toBeInstanceOf(Promise);
    let resumed = false;
    void pause?.then(() => {
      resumed = true;
    });
    await Promise.resolve();
    expect(resumed).toBe(false);
    await nextTurn();
    expect(resumed).toBe(true);
    // The turn counts: the next calls go on at once again, however late.
    now += 10 * YIELD_AFTER_MS;
    expect(loop.pause()).toBeNull();
    now += YIELD_AFTER_MS - 1;
    expect(loop.pause()).toBeNull();
  });

  it('never pauses while the event loop keeps turning between calls', async () => {
    let now = 0;
    const loop = new LoopYield(() => now);
    for (let i = 0; i < 20; i++) {
      expect(loop.pause()).toBeNull();
      now += 3 * YIELD_AFTER_MS;
      await nextTurn();
    }
  });
});
