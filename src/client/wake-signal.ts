import type { WakeSource } from '../store/store.js';

/**
 * A latch over a queue's wake-ups. Subscribed before the first claim, so a
 * wake-up that lands between a claim finding nothing and the wait starting is
 * not lost: `wait` then returns at once.
 */
export class WakeSignal {
  private pending = false;
  private release: (() => void) | null = null;
  private readonly unsubscribe: () => void;

  constructor(source: WakeSource, queue: string) {
    this.unsubscribe = source.subscribe(queue, () => this.fire());
  }

  /** Wakes a current or the next wait. */
  fire(): void {
    this.pending = true;
    const release = this.release;
    this.release = null;
    release?.();
  }

  /** Resolves at the next wake-up, or after `ms`, whichever is first. */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.release === done) self.release = null;
        self.pending = false;
        resolve();
      }
      this.release = done;
    });
  }

  close(): void {
    this.unsubscribe();
    this.fire();
  }
}
