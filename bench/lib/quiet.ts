import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { POSTGRES_URL } from '../systems/queue-system.js';
import { now } from './timing.js';

/** The longest the quiet step waits on PostgreSQL's checkpoint before measuring anyway. */
const CHECKPOINT_TIMEOUT_MS = 60_000;

/** What the quiet step before a job did, and how long it took. */
export interface QuietOutcome {
  ms: number;
  /** Why a part was skipped (PostgreSQL down, sync(1) missing); null when both ran. */
  skipped: string | null;
}

/**
 * Before each measured job: write out what earlier jobs left to be written,
 * so that no job measures another system's write-back. A job that stored a
 * million messages leaves hundreds of megabytes of dirty pages in the kernel
 * and in PostgreSQL's buffers; written back during the next job, they compete
 * with that job's commits for the disk, whichever system it measures (a
 * Sluice/SQLite run right after the MEM jobs went at 37,830 sends/s against
 * 93,000-99,000 in the others). CHECKPOINT writes PostgreSQL's buffers and syncs its
 * files now, instead of in a checkpoint spread over the next minutes, and
 * sync(1) flushes the kernel's dirty pages (the SQLite files of earlier runs
 * among them). Every system gets the same step before each of its jobs; what
 * a system writes during its own job is still measured in full.
 */
export async function quietMachine(): Promise<QuietOutcome> {
  const started = now();
  const skipped: string[] = [];
  const client = new pg.Client({ connectionString: POSTGRES_URL, statement_timeout: CHECKPOINT_TIMEOUT_MS });
  try {
    await client.connect();
    await client.query('CHECKPOINT');
  } catch (error) {
    skipped.push(`CHECKPOINT: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: CHECKPOINT_TIMEOUT_MS });
  } catch (error) {
    skipped.push(`sync: ${(error as Error).message}`);
  }
  return { ms: now() - started, skipped: skipped.length === 0 ? null : skipped.join('; ') };
}
