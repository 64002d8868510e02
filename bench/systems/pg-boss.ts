import pg from 'pg';
import PgBoss from 'pg-boss';
import {
  identifier,
  type Payload,
  POSTGRES_URL,
  type QueueClient,
  type QueueSystem,
  type RunningWorker,
  type Target,
  type WorkOptions,
} from './queue-system.js';

/*
 * pg-boss 10 (the line Node 20 resolves), with its own speed settings from its
 * API docs (timgit/pg-boss docs, "work()", "insert()"):
 * - insert([...]) for bulk: one statement for the whole array.
 * - Concurrency: version 10 removed teamSize/teamConcurrency; its maintainer
 *   recommends one work() call per unit of concurrency (timgit/pg-boss#659), so
 *   concurrency N is N workers, each running its batch one job at a time.
 * - batchSize: a pg-boss 10 worker runs one fetch per polling interval even when
 *   jobs are waiting (its loop sleeps out the interval), so its throughput is at
 *   most batchSize per interval. batchSize 50 was the fastest of 20, 50, 100
 *   and 500 tried here at concurrency 32 (20,000 jobs): larger batches made
 *   pg-boss's batched completion slow (500: ~600 jobs/s; 50: ~1,900 jobs/s).
 * - pollingIntervalSeconds: 0.5, the smallest pg-boss accepts. pg-boss 10 has
 *   no LISTEN/NOTIFY wake-up; an idle worker finds new jobs on its next poll.
 * - schedule: false (no cron in these workloads); maintenance (supervise) left on
 *   as in production; pool size left at its default (max 10).
 */
const POLLING_SECONDS = 0.5;
const BATCH_SIZE = 50;

function boss(target: Target): PgBoss {
  const instance = new PgBoss({
    connectionString: POSTGRES_URL,
    schema: target.schema as string,
    schedule: false,
  });
  instance.on('error', () => {});
  return instance;
}

export const pgBoss: QueueSystem = {
  name: 'pg-boss',
  label: 'pg-boss',
  store: 'postgres',
  peer: true,
  durability: 'durable: PostgreSQL commit with synchronous_commit=on, fsync=on',
  settings: `insert() for bulk; concurrency N = N work() calls, each { batchSize: ${BATCH_SIZE}, pollingIntervalSeconds: ${POLLING_SECONDS} } running its batch one job at a time; schedule off; pool max 10 (default)`,
  bulkLimit: 1_000,
  async create(runId: string): Promise<Target> {
    const target: Target = { queue: 'bench', schema: identifier('pgboss_bench', runId) };
    const b = boss(target);
    await b.start();
    await b.createQueue(target.queue);
    await b.stop({ graceful: false, wait: true });
    return target;
  },
  async connect(target: Target): Promise<QueueClient> {
    const b = boss(target);
    await b.start();
    const name = target.queue;
    return {
      async sendOne(payload) {
        await b.send(name, payload);
      },
      async sendBulk(payloads) {
        await b.insert(payloads.map((data) => ({ name, data })));
      },
      async work({ concurrency, handler }: WorkOptions): Promise<RunningWorker> {
        const ids: string[] = [];
        for (let w = 0; w < concurrency; w++) {
          const id = await b.work<Payload>(
            name,
            { batchSize: BATCH_SIZE, pollingIntervalSeconds: POLLING_SECONDS },
            async (jobs) => {
              for (const job of jobs) await handler(job.data);
            },
          );
          ids.push(id);
        }
        return {
          async stop() {
            for (const id of ids) await b.offWork({ id });
          },
        };
      },
      async remaining() {
        return b.getQueueSize(name, { before: 'completed' });
      },
      async close() {
        await b.stop({ graceful: true, wait: true, timeout: 5_000 } as PgBoss.StopOptions);
      },
    };
  },
  async destroy(target: Target): Promise<void> {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${target.schema as string}" CASCADE`);
    } finally {
      await client.end();
    }
  },
};
