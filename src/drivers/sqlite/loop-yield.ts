/** How long store calls may keep the event loop from turning before one of them yields a turn. */
export const YIELD_AFTER_MS = 10;

/**
 * Keeps a run of awaited SQLite calls from holding the event loop.
 *
 * better-sqlite3 is synchronous and a lone commit fsyncs on this thread, so
 * an awaited store call resolves in microtasks, with no I/O to wait for: a
 * loop of awaited sends (a script sending one message at a time, a handler
 * fanning out to thousands of queues' worth of messages) never lets the
 * event loop turn. Measured: 3,000 sends awaited one after another held it
 * for 845 ms, in which a 1 ms interval fired not once; a worker's lease
 * keeper in the same process, its handler timeouts and an HTTP server's
 * requests would all have waited for the loop to end.
 *
 * Each call asks `pause()`. The first call after the loop turned schedules a
 * marker on the next turn (setImmediate); while that marker has not run, the
 * loop has not turned, and once it is YIELD_AFTER_MS old, `pause()` returns
 * a promise for the next turn, which the caller awaits before going on.
 */
export class LoopYield {
  /** When the pending marker was scheduled; null once it ran (the loop turned since). */
  private markedAt: number | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Null to go on at once; else a promise that resolves on the event loop's next turn. */
  pause(): Promise<void> | null {
    const now = this.now();
    if (this.markedAt === null) {
      this.markedAt = now;
      setImmediate(() => {
        this.markedAt = null;
      });
      return null;
    }
    if (now - this.markedAt < YIELD_AFTER_MS) return null;
    // Immediates run in order, so the marker clears markedAt before this resolves.
    return new Promise((resolve) => setImmediate(resolve));
  }
}
