/**
 * Group commit. Calls made in the same moment are gathered and handed to
 * `flush` together, so they share one transaction (and one fsync) while each
 * caller still waits for its own result.
 *
 * A flush starts either once the microtasks queued when the first item
 * arrived have run (`'microtask'`: gathers a burst of awaiting callers
 * resuming together, with no extra turn of the event loop), or on the next
 * turn of the event loop (`'macrotask'`: also gathers items added at any depth
 * of promise chains, such as acks from handlers finishing at different
 * points, at the price of one loop turn). While `concurrency` flushes are running, new
 * items wait and go together in the next one, so batches grow with load on
 * their own: at low load each item is a batch of one with no added delay.
 */
/** Called once with an item's result, or with the error that failed its batch. */
export type BatchCallback<R> = (error: unknown, result: R | undefined) => void;

export class BatchQueue<I, R> {
  private pending: { item: I; weight: number; done: BatchCallback<R> }[] = [];
  private running = 0;
  private scheduled = false;
  private readonly idleWaiters: (() => void)[] = [];

  /**
   * @param flush stores a batch; returns one result per item, in order.
   * @param options.concurrency flushes allowed at once (1 for SQLite, which has one writer).
   * @param options.maxWeight most weight (e.g. messages) in one flush.
   * @param options.schedule when a flush starts after the first item (default `'microtask'`).
   */
  constructor(
    private readonly flush: (items: I[]) => Promise<R[]>,
    private readonly options: { concurrency: number; maxWeight: number; schedule?: 'microtask' | 'macrotask' },
  ) {}

  /** Adds an item; resolves with its result once its batch is stored. */
  add(item: I, weight = 1): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.addWith(item, weight, (error, result) => (error === undefined ? resolve(result as R) : reject(error)));
    });
  }

  /**
   * Adds an item and calls `done` once its batch is stored (or failed): for
   * callers settling thousands of items a second, where a promise per item
   * (and the async-context tracking each promise carries) is a measurable
   * share of the work. `done` must not throw.
   */
  addWith(item: I, weight: number, done: BatchCallback<R>): void {
    this.pending.push({ item, weight, done });
    this.schedule();
  }

  /** Resolves when nothing is pending or running. */
  idle(): Promise<void> {
    if (this.pending.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.options.concurrency) return;
    this.scheduled = true;
    const start = () => {
      this.scheduled = false;
      this.drain();
    };
    if (this.options.schedule === 'macrotask') setImmediate(start);
    else queueMicrotask(start);
  }

  private drain(): void {
    while (this.pending.length > 0 && this.running < this.options.concurrency) {
      let take = 0;
      let weight = 0;
      while (take < this.pending.length) {
        const w = (this.pending[take] as { weight: number }).weight;
        if (take > 0 && weight + w > this.options.maxWeight) break;
        weight += w;
        take += 1;
      }
      const batch = this.pending.splice(0, take);
      this.running += 1;
      void this.run(batch);
    }
  }

  private async run(batch: { item: I; done: BatchCallback<R> }[]): Promise<void> {
    let results: R[] | undefined;
    let failure: unknown;
    try {
      results = await this.flush(batch.map((b) => b.item));
    } catch (error) {
      failure = error ?? new Error('batch failed');
    }
    try {
      for (let i = 0; i < batch.length; i++) {
        (batch[i] as (typeof batch)[number]).done(failure, results === undefined ? undefined : (results[i] as R));
      }
    } finally {
      this.running -= 1;
      if (this.pending.length > 0) this.drain();
      else if (this.running === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }
}
