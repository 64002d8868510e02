/**
 * Per-queue counter changes gathered while an operation runs, so each store
 * writes them once, at the end, in one statement or one row per queue —
 * rather than touching a hot counter row for every message.
 */

/** The changes to one queue's counters. */
export interface QueueCounterDelta {
  queue: string;
  depth: number;
  enqueued: number;
  completed: number;
  retried: number;
  deadLettered: number;
}

/** Accumulates counter changes by queue; a store subclass writes them. */
export class CounterDeltaSet {
  private readonly deltas = new Map<string, QueueCounterDelta>();

  /** Adds changes to a queue's depth, enqueued, completed, retried and dead-lettered counts. */
  add(queue: string, depth: number, enqueued: number, completed: number, retried: number, dead: number): void {
    const d = this.deltas.get(queue);
    if (d === undefined) {
      this.deltas.set(queue, { queue, depth, enqueued, completed, retried, deadLettered: dead });
      return;
    }
    d.depth += depth;
    d.enqueued += enqueued;
    d.completed += completed;
    d.retried += retried;
    d.deadLettered += dead;
  }

  /** The gathered changes in queue order (a fixed lock order for the rows they touch), leaving none. */
  protected take(): QueueCounterDelta[] {
    const all = [...this.deltas.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
    this.deltas.clear();
    return all;
  }
}
