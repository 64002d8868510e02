import { type Clock, systemClock } from '../core/clock.js';
import { DEFAULT_PAYLOAD_LIMIT_BYTES } from '../core/payload.js';
import { SqliteStore } from '../drivers/sqlite/sqlite-store.js';
import { InvalidUrlError, ValidationError } from '../errors.js';
import { defaultLogger, type Logger } from '../observe/logger.js';
import type { Store } from '../store/store.js';

/** Options of `Sluice.open` besides where the store is. */
export interface SluiceOptions {
  /** Largest JSON-encoded payload accepted. Default 262,144 bytes (256 KiB). */
  payloadLimitBytes?: number;
  /** Structured logger. Default: JSON lines on stderr at `SLUICE_LOG_LEVEL` (default `warn`). */
  logger?: Logger;
  /** Time source for the SQLite store and the runtime. Default: the system clock. */
  clock?: Clock;
  /**
   * Whether this process rescues expired leases and applies retention while it
   * consumes (`receive` or `work`). Default true; any number of processes may.
   */
  maintenance?: boolean;
  /** How often expired leases are looked for. Default 1,000 ms. */
  sweepIntervalMs?: number;
  /** How often retention runs. Default 60,000 ms. */
  retentionIntervalMs?: number;
}

/** Where the store is: a URL, or an options object. */
export type StoreLocation =
  | string
  | { store: 'sqlite'; path: string; synchronous?: 'full' | 'normal'; busyTimeoutMs?: number }
  | { store: 'postgres'; url: string; schema?: string; poolSize?: number }
  | { store: Store };

/** Resolved open options. */
export interface ResolvedOptions {
  payloadLimitBytes: number;
  logger: Logger;
  clock: Clock;
  maintenance: boolean;
  sweepIntervalMs: number;
  retentionIntervalMs: number;
}

export function resolveOptions(options: SluiceOptions | undefined): ResolvedOptions {
  const o = options ?? {};
  const limit = o.payloadLimitBytes ?? DEFAULT_PAYLOAD_LIMIT_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new ValidationError('payloadLimitBytes must be a positive whole number');
  return {
    payloadLimitBytes: limit,
    logger: o.logger ?? defaultLogger(),
    clock: o.clock ?? systemClock,
    maintenance: o.maintenance ?? true,
    sweepIntervalMs: o.sweepIntervalMs ?? 1_000,
    retentionIntervalMs: o.retentionIntervalMs ?? 60_000,
  };
}

/**
 * Opens the store a location names.
 * - `sqlite:./data/sluice.db`, `sqlite:/abs/path.db` (query: `synchronous=normal`, `busyTimeoutMs=…`)
 * - `postgres://user@host:5432/db` or `postgresql://…` (query: `schema=…`, `poolSize=…`)
 */
export async function openStore(location: StoreLocation, clock: Clock): Promise<Store> {
  if (typeof location === 'string') return openUrl(location, clock);
  if (typeof location !== 'object' || location === null) {
    throw new InvalidUrlError('Sluice.open needs a URL such as "sqlite:./data/sluice.db" or an options object');
  }
  if (location.store === 'sqlite') {
    return SqliteStore.open({
      path: location.path,
      synchronous: location.synchronous,
      busyTimeoutMs: location.busyTimeoutMs,
      clock,
    });
  }
  if (location.store === 'postgres') {
    const { PostgresStore } = await import('../drivers/postgres/postgres-store.js');
    return PostgresStore.open({ url: location.url, schema: location.schema, poolSize: location.poolSize });
  }
  if (typeof location.store === 'object' && location.store !== null) return location.store;
  throw new InvalidUrlError('options.store must be "sqlite", "postgres" or a Store instance');
}

function openUrl(url: string, clock: Clock): Promise<Store> | Store {
  if (url.startsWith('sqlite:')) {
    const rest = url.slice('sqlite:'.length);
    const [rawPath = '', query = ''] = rest.split('?', 2);
    // sqlite:///abs/path and sqlite:/abs/path both name /abs/path; sqlite:./x is relative.
    const file = rawPath.startsWith('//') ? rawPath.slice(2) : rawPath;
    if (file.length === 0) throw new InvalidUrlError(`"${url}" names no file; use sqlite:./data/sluice.db`);
    const params = new URLSearchParams(query);
    const synchronous = params.get('synchronous');
    if (synchronous !== null && synchronous !== 'full' && synchronous !== 'normal') {
      throw new InvalidUrlError('synchronous must be "full" or "normal"');
    }
    const busy = params.get('busyTimeoutMs');
    return SqliteStore.open({
      path: decodeURIComponent(file),
      synchronous: synchronous ?? undefined,
      busyTimeoutMs: busy === null ? undefined : Number(busy),
      clock,
    });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema') ?? undefined;
    const pool = parsed.searchParams.get('poolSize');
    parsed.searchParams.delete('schema');
    parsed.searchParams.delete('poolSize');
    return openStore(
      { store: 'postgres', url: parsed.toString(), schema, poolSize: pool === null ? undefined : Number(pool) },
      clock,
    );
  }
  throw new InvalidUrlError(
    `cannot open "${url.slice(0, 60)}": use sqlite:./path/to/file.db or postgres://user@host:5432/database`,
  );
}
