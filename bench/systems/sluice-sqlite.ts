import fs from 'node:fs';
import path from 'node:path';
import { benchDataDir } from '../lib/data-dir.js';
import { identifier, type QueueSystem, type Target } from './queue-system.js';
import { connectSluice } from './sluice-client.js';

/** Sluice on an embedded SQLite file in the benchmark's data directory (same disk as the fsync probe). */
export const sluiceSqlite: QueueSystem = {
  name: 'sluice-sqlite',
  label: 'Sluice/SQLite',
  store: 'sqlite',
  peer: false,
  durability:
    'durable (the default synchronous "full"): a send resolves only after an fdatasync of the WAL that follows its commit; concurrent commits share one fsync',
  settings:
    'defaults: group commit for concurrent sends, sendMany for bulk, work({ concurrency }) with automatic prefetch (about 100 ms of work)',
  bulkLimit: 10_000,
  async create(runId: string): Promise<Target> {
    const dir = path.join(benchDataDir(), identifier('sqlite', runId));
    fs.mkdirSync(dir, { recursive: true });
    return {
      queue: 'bench',
      dir,
      location: { store: 'sqlite', path: path.join(dir, 'sluice.db') },
    };
  },
  connect: connectSluice,
  async destroy(target: Target): Promise<void> {
    fs.rmSync(target.dir as string, { recursive: true, force: true });
  },
};
