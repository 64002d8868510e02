import fs from 'node:fs';

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
   */
  sync(inlineWhenIdle = false): Promise<void> {
    if (this.running === null && inlineWhenIdle) {
      try {
        fs.fdatasyncSync(this.descriptor());
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

  private async run(): Promise<void> {
    try {
      const fd = this.descriptor();
      await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
    } finally {
      this.running = null;
    }
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
