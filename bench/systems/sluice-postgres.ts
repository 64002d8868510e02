import pg from 'pg';
import { identifier, POSTGRES_URL, type QueueSystem, type Target } from './queue-system.js';
import { connectSluice, openSluice } from './sluice-client.js';

/**
 * Sluice on PostgreSQL, in a fresh schema per run. `create` opens the store once
 * (creating and migrating the schema), so a build without the PostgreSQL driver
 * fails here and the harness reports the system as unavailable.
 */
export const sluicePostgres: QueueSystem = {
  name: 'sluice-postgres',
  label: 'Sluice/PostgreSQL',
  store: 'postgres',
  peer: false,
  durability: 'durable: PostgreSQL commit with synchronous_commit=on, fsync=on (WAL flushed before a send resolves)',
  settings:
    'defaults: group commit for concurrent sends, sendMany for bulk, work({ concurrency }) with automatic prefetch (about 100 ms of work)',
  bulkLimit: 10_000,
  async create(runId: string): Promise<Target> {
    const schema = identifier('sluice_bench', runId);
    const target: Target = { queue: 'bench', schema, location: { store: 'postgres', url: POSTGRES_URL, schema } };
    const sluice = await openSluice(target);
    await sluice.close();
    return target;
  },
  connect: connectSluice,
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
