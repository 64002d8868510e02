import { Logger, makeWorkerUtils, run, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
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
 * Graphile Worker 0.17 with the configuration its performance page
 * (worker.graphile.org/docs/performance) used for its quick stats, scaled to
 * the workload's concurrency:
 * - concurrentJobs = concurrency, maxPoolSize = max(10, concurrency + 2) (the
 *   pool-size advice in its option docs), capped at 50 because this server
 *   allows 100 connections (with the local queue, running jobs hold none),
 * - localQueue: { size: 500 } — batched fetch, jobs served from a local queue,
 * - completeJobBatchDelay: 0, failJobBatchDelay: 0 — batched completion,
 * - addJobs() for bulk (one call, one statement), addJob() for single sends.
 * New jobs wake workers through LISTEN/NOTIFY; pollInterval stays at its default.
 */
const LOCAL_QUEUE_SIZE = 500;
const silent = new Logger(() => () => {});

export const graphileWorker: QueueSystem = {
  name: 'graphile-worker',
  label: 'Graphile Worker',
  store: 'postgres',
  peer: true,
  durability: 'durable: PostgreSQL commit with synchronous_commit=on, fsync=on',
  settings: `addJobs() for bulk; run({ concurrency, maxPoolSize: min(50, max(10, concurrency+2)), localQueue: { size: ${LOCAL_QUEUE_SIZE} }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }) as in its performance docs`,
  bulkLimit: 1_000,
  async create(runId: string): Promise<Target> {
    const target: Target = { queue: 'bench', schema: identifier('graphile_bench', runId) };
    const utils = await makeWorkerUtils({
      connectionString: POSTGRES_URL,
      schema: target.schema as string,
      logger: silent,
    });
    try {
      await utils.migrate();
    } finally {
      await utils.release();
    }
    return target;
  },
  async connect(target: Target): Promise<QueueClient> {
    const schema = target.schema as string;
    const utils: WorkerUtils = await makeWorkerUtils({ connectionString: POSTGRES_URL, schema, logger: silent });
    const runners: { stop: () => Promise<void> }[] = [];
    return {
      async sendOne(payload) {
        await utils.addJob(target.queue, payload);
      },
      async sendBulk(payloads) {
        await utils.addJobs(payloads.map((payload) => ({ identifier: target.queue, payload })));
      },
      async work({ concurrency, handler }: WorkOptions): Promise<RunningWorker> {
        const runner = await run({
          connectionString: POSTGRES_URL,
          schema,
          concurrency,
          maxPoolSize: Math.min(50, Math.max(10, concurrency + 2)),
          noHandleSignals: true,
          logger: silent,
          taskList: {
            [target.queue]: async (payload) => {
              await handler(payload as Payload);
            },
          },
          preset: {
            worker: { localQueue: { size: LOCAL_QUEUE_SIZE }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
          },
        });
        let stopped: Promise<void> | null = null;
        const stop = () => {
          stopped ??= runner.stop();
          return stopped;
        };
        runners.push({ stop });
        return { stop };
      },
      async remaining() {
        return utils.withPgClient(async (client) => {
          const r = await client.query<{ n: string }>(`select count(*) as n from "${schema}"._private_jobs`);
          return Number(r.rows[0]?.n ?? 0);
        });
      },
      async close() {
        await Promise.all(runners.map((r) => r.stop()));
        await utils.release();
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
