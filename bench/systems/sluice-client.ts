import { Sluice, type StoreLocation } from '../../src/index.js';
import type { Payload, QueueClient, RunningWorker, Target, WorkOptions } from './queue-system.js';

/** A Sluice queue: where the store is (a JSON `StoreLocation`) and the queue's name. */
export interface SluiceTarget extends Target {
  location: StoreLocation;
}

/** Opens the store a target names; used by the Sluice-only workloads (ordering keys, fan-out). */
export function openSluice(target: Target): Promise<Sluice> {
  return Sluice.open((target as SluiceTarget).location);
}

/**
 * Sluice used as documented, with defaults: `send` (concurrent sends share one
 * commit through the client's group commit), `sendMany` for bulk, and
 * `work(queue, handler, { concurrency })` with the default (automatic) prefetch.
 */
export async function connectSluice(target: Target): Promise<QueueClient> {
  const sluice = await openSluice(target);
  const queue = target.queue;
  return {
    async sendOne(payload: Payload) {
      await sluice.send(queue, payload);
    },
    async sendBulk(payloads: Payload[]) {
      await sluice.sendMany(
        queue,
        payloads.map((payload) => ({ payload })),
      );
    },
    async work({ concurrency, handler }: WorkOptions): Promise<RunningWorker> {
      const worker = sluice.work<Payload>(queue, (message) => handler(message.payload), { concurrency });
      return { stop: () => worker.close() };
    },
    async remaining() {
      const s = await sluice.queue(queue).stats();
      return s.ready + s.delayed + s.waiting + s.inFlight;
    },
    close: () => sluice.close(),
  };
}
