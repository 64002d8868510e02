import fs from 'node:fs';

/** An fdatasync slower than this means the disk is stalled: stop syncing on the event loop. */
export const STALL_MS = 20;
/** Sync on the event loop again only after the disk has answered within STALL_MS for this long. */
export const CALM_MS = 1_000;

/**
 * Group fsync of the write-ahead log, off the event loop.
 *
 * The store commits with `synchronous=NORMAL` (no fsync inside COMMIT, which
 * would block the event loop), then durable operations await `sync()`: an
 * fdatasync of the WAL file run in libuv's thread pool. fsync is per file, not
 * per descriptor, so one fdatasync makes every commit before it durable, ours
 * and other processes'. Callers arriving while one runs share the next one:
 * at most one runs and one waits, however many commits there were.
 *
 * SQLite itself still syncs the WAL before each checkpoint and the database
 * after it, so NORMAL keeps the file consistent; this adds durability of each
 * acknowledged commit, as FULL would, without stalling other work meanwhile.
 */
export class WalSync {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private fd: number | null = null;
  /** Since when every fdatasync was fast, while inline syncs are held off; null while they are allowed. */
  private stalledCalmSince: number | null = null;

  constructor(private readonly walPath: string) {}

  /**
   * Resolves once an fdatasync that started after this call has finished.
   * While one runs, callers share the next, off-thread.
   *
   * With `inlineWhenIdle`, when none is running the fsync happens at once on
   * this thread instead: the lowest latency for a caller that waits anyway (a
   * hand-off to the thread pool and back costs about a fifth of an fsync),
   * for producers, whose callers await each send. Consumers settle without
   * inline syncs so their handlers keep running during the fsync.
   *
   * An inline fsync holds the whole process for as long as the disk takes:
   * 0.1-0.3 ms usually, but 17-990 ms measured while the kernel wrote back
   * gigabytes, when a web server producing messages would stall every
   * request. So once one takes longer than STALL_MS, syncs go to the thread
   * pool, and come back inline only after the disk has answered within
   * STALL_MS for CALM_MS.
   */
  sync(inlineWhenIdle = false): Promise<void> {
    if (this.running === null && inlineWhenIdle && this.stalledCalmSince === null) {
      try {
        const started = performance.now();
        fs.fdatasyncSync(this.descriptor());
        if (performance.now() - started > STALL_MS) this.stalledCalmSince = performance.now();
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.running === null) {
      this.running = this.run();
      return this.running;
    }
    if (this.next === null) {
      const after = this.running.catch(() => undefined);
      this.next = after.then(() => {
        this.next = null;
        this.running = this.run();
        return this.running;
      });
    }
    return this.next;
  }

  /** Whether inline syncs are held off because the disk stalled (see sync). */
  get stalled(): boolean {
    return this.stalledCalmSince !== null;
  }

  private async run(): Promise<void> {
    try {
      const fd = this.descriptor();
      const started = performance.now();
      await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
      this.observe(performance.now() - started);
    } finally {
      this.running = null;
    }
  }

  /** While inline syncs are held off, a slow fsync restarts the calm period; a long enough one ends it. */
  private observe(ms: number): void {
    if (this.stalledCalmSince === null) return;
    const now = performance.now();
    if (ms > STALL_MS) this.stalledCalmSince = now;
    else if (now - this.stalledCalmSince >= CALM_MS) this.stalledCalmSince = null;
  }

  /**
   * The WAL's descriptor, opened once. SQLite removes or replaces the WAL only
   * when the last connection to the database closes, and this store's own
   * connection stays open for as long as this object is used; truncation
   * (journal_size_limit) keeps the same file.
   */
  private descriptor(): number {
    if (this.fd === null) this.fd = fs.openSync(this.walPath, 'r');
    return this.fd;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
