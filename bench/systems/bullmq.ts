import { Queue, Worker } from 'bullmq';
import {
  identifier,
  type Payload,
  type QueueClient,
  type QueueSystem,
  REDIS_HOST,
  REDIS_PORT,
  type RunningWorker,
  type Target,
  type WorkOptions,
} from './queue-system.js';

/*
 * BullMQ's own speed settings, from its guide (docs.bullmq.io):
 * - "Auto-removal of jobs": removeOnComplete / removeOnFail, so finished jobs do
 *   not pile up in Redis (set on the queue's defaultJobOptions and the worker).
 * - "Adding jobs in bulk": queue.addBulk, one round trip and one atomic script.
 * - "Concurrency": the worker's `concurrency` option; a finishing job fetches
 *   the next one in the same script call.
 * - "Going to production": workers need maxRetriesPerRequest: null, which
 *   BullMQ sets itself when it creates the connection from options.
 */
const connection = { host: REDIS_HOST, port: REDIS_PORT };

export const bullmq: QueueSystem = {
  name: 'bullmq',
  label: 'BullMQ',
  store: 'redis',
  peer: true,
  durability:
    'NOT durable: this Redis runs with save "" and appendonly no (no fsync); acknowledged jobs are lost if Redis stops',
  settings:
    'removeOnComplete/removeOnFail on queue and worker, addBulk for bulk, Worker({ concurrency }); one Redis connection per Queue/Worker',
  bulkLimit: 1_000,
  async create(runId: string): Promise<Target> {
    return { queue: identifier('bench', runId) };
  },
  async connect(target: Target): Promise<QueueClient> {
    const queue = new Queue<Payload>(target.queue, {
      connection,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    await queue.waitUntilReady();
    const workers: Worker<Payload>[] = [];
    return {
      async sendOne(payload) {
        await queue.add('m', payload);
      },
      async sendBulk(payloads) {
        await queue.addBulk(payloads.map((data) => ({ name: 'm', data })));
      },
      async work({ concurrency, handler }: WorkOptions): Promise<RunningWorker> {
        const worker = new Worker<Payload>(target.queue, async (job) => handler(job.data), {
          connection,
          concurrency,
          removeOnComplete: { count: 0 },
          removeOnFail: { count: 0 },
        });
        worker.on('error', () => {});
        await worker.waitUntilReady();
        workers.push(worker);
        return { stop: () => worker.close() };
      },
      async remaining() {
        const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
        return Object.values(counts).reduce((a, b) => a + b, 0);
      },
      async close() {
        await Promise.all(workers.map((w) => w.close()));
        await queue.close();
      },
    };
  },
  async destroy(target: Target): Promise<void> {
    const queue = new Queue(target.queue, { connection });
    try {
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  },
};
