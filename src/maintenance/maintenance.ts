import type { Logger } from '../observe/logger.js';
import type { Store } from '../store/store.js';

/**
 * Background upkeep for a consuming process:
 * - lease rescue every `sweepIntervalMs`: expired leases are requeued, or
 *   dead-lettered when their attempts are used up;
 * - retention every `retentionIntervalMs`: retained completions, idempotency
 *   keys and once() records past their windows are deleted.
 *
 * Any number of processes may run it: each step is one transaction that only
 * touches rows still matching its condition, so two runners never apply the
 * same change twice. A failed step is logged and tried again next interval.
 */
export class Maintenance {
  private sweepTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  /** Steps under way; a step still running when its timer fires again is skipped, not queued. */
  private readonly running = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: { sweepIntervalMs: number; retentionIntervalMs: number },
  ) {}

  start(): void {
    this.sweepTimer = setInterval(() => this.step('lease rescue', () => this.rescue()), this.options.sweepIntervalMs);
    this.retentionTimer = setInterval(
      () => this.step('retention', () => this.store.retentionSweep({ limit: 10_000 })),
      this.options.retentionIntervalMs,
    );
    // Neither timer should keep a process alive on its own.
    this.sweepTimer.unref();
    this.retentionTimer.unref();
  }

  private async rescue(): Promise<void> {
    // Drain in chunks so a mass expiry (a crashed fleet) is handled in one pass
    // without one huge transaction.
    for (;;) {
      const result = await this.store.leaseRescue({ limit: 1_000 });
      if (result.requeued + result.deadLettered > 0) {
        this.logger.info({ ...result }, 'expired leases recovered');
      }
      if (result.requeued + result.deadLettered < 1_000 || this.stopped) return;
    }
  }

  private step(name: string, fn: () => Promise<unknown>): void {
    if (this.stopped || this.running.has(name)) return;
    const run = fn()
      .then(
        () => undefined,
        (error: unknown) => this.logger.warn({ err: error }, `${name} failed; will try again`),
      )
      .finally(() => this.running.delete(name));
    this.running.set(name, run);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer);
    await Promise.all(this.running.values());
  }
}
