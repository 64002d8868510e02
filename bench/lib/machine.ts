import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import { POSTGRES_URL, REDIS_HOST, REDIS_PORT } from '../systems/queue-system.js';
import { benchDataDir } from './data-dir.js';
import { fsyncRate } from './fsync-probe.js';
import { now } from './timing.js';

/** Facts about the machine and its servers, measured in the same run as the figures. */
export interface MachineFacts {
  cpu: string;
  cpus: number;
  memoryGb: number;
  os: string;
  node: string;
  disk: string;
  dataDir: string;
  /** write + fdatasync of a small record, in a loop, on the data directory's disk. */
  fsyncPerSec: number;
  postgres: string;
  postgresSettings: string;
  /** Single-row INSERT commits per second from one connection. */
  postgresCommitsPerSec: number;
  redis: string;
  redisPersistence: string;
  loadAverageStart: number[];
  /** The Sluice commit measured, and whether src/ had uncommitted changes (other work in progress). */
  sluiceCommit: string;
}

const PROBE_MS = 2_000;

export async function machineFacts(): Promise<MachineFacts> {
  const dataDir = benchDataDir();
  fs.mkdirSync(dataDir, { recursive: true });
  const [postgres, redis] = await Promise.all([postgresFacts(), redisFacts()]);
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    disk: diskOf(dataDir),
    dataDir,
    fsyncPerSec: fsyncRate(dataDir, PROBE_MS),
    ...postgres,
    ...redis,
    loadAverageStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    sluiceCommit: sluiceCommit(),
  };
}

function sluiceCommit(): string {
  if (process.env.BENCH_SLUICE_COMMIT) return process.env.BENCH_SLUICE_COMMIT;
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim();
    return dirty === '' ? head : `${head} + uncommitted changes in src/`;
  } catch {
    return 'unknown';
  }
}

function diskOf(dir: string): string {
  try {
    const out = execFileSync('df', ['-h', '--output=source,fstype,size', dir], { encoding: 'utf8' });
    return (out.trim().split('\n')[1] ?? '').replace(/\s+/g, ' ');
  } catch {
    return 'unknown';
  }
}

async function postgresFacts(): Promise<Pick<MachineFacts, 'postgres' | 'postgresSettings' | 'postgresCommitsPerSec'>> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    await client.connect();
    const version = (await client.query<{ v: string }>('select version() as v')).rows[0]?.v ?? '';
    const settings = await client.query<{ name: string; setting: string }>(
      `select name, setting from pg_settings
       where name in ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'max_connections')
       order by name`,
    );
    const table = `bench_commit_probe_${process.pid}`;
    await client.query(`create table ${table} (id bigserial primary key, body text)`);
    let count = 0;
    const start = now();
    try {
      while (now() - start < PROBE_MS) {
        await client.query(`insert into ${table} (body) values ($1)`, ['x'.repeat(200)]);
        count += 1;
      }
    } finally {
      await client.query(`drop table ${table}`);
    }
    return {
      postgres: version.split(' on ')[0] ?? version,
      postgresSettings: settings.rows.map((r) => `${r.name}=${r.setting}`).join(', '),
      postgresCommitsPerSec: count / ((now() - start) / 1000),
    };
  } catch (error) {
    return { postgres: `unavailable (${String(error)})`, postgresSettings: '', postgresCommitsPerSec: Number.NaN };
  } finally {
    await client.end().catch(() => {});
  }
}

async function redisFacts(): Promise<Pick<MachineFacts, 'redis' | 'redisPersistence'>> {
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    const save = (await redis.config('GET', 'save')) as string[];
    const aof = (await redis.config('GET', 'appendonly')) as string[];
    const fsync = (await redis.config('GET', 'appendfsync')) as string[];
    return {
      redis: `Redis ${version}`,
      redisPersistence: `save="${save[1] ?? ''}", appendonly=${aof[1] ?? '?'}, appendfsync=${fsync[1] ?? '?'}`,
    };
  } catch (error) {
    return { redis: `unavailable (${String(error)})`, redisPersistence: '' };
  } finally {
    redis.disconnect();
  }
}
