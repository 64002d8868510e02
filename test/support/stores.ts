/**
 * Fresh stores for tests: a new SQLite file or a new PostgreSQL schema per
 * call, removed afterwards. Every conformance test runs once per kind.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SluiceOptions, StoreLocation } from '../../src/client/open-options.js';
import { Sluice } from '../../src/client/sluice.js';
import type { Logger } from '../../src/observe/logger.js';

export type StoreKind = 'sqlite' | 'postgres';

/** PostgreSQL used by tests; CI makes sure it is up. */
export const PG_URL = process.env.SLUICE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Store kinds the conformance suite runs against. `SLUICE_TEST_STORES=sqlite` narrows it while developing. */
export const STORE_KINDS: StoreKind[] = (process.env.SLUICE_TEST_STORES ?? 'sqlite,postgres')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is StoreKind => s === 'sqlite' || s === 'postgres');

/** A logger that keeps what it is told, for assertions, and prints nothing. */
export function memoryLogger(): Logger & { lines: { level: string; fields: object; message: string }[] } {
  const lines: { level: string; fields: object; message: string }[] = [];
  const log = (level: string) => (fields: object, message: string) => {
    lines.push({ level, fields, message });
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export interface TestStore {
  kind: StoreKind;
  location: StoreLocation;
  /** Opens another instance on the same store (another "process" in one). */
  open(options?: SluiceOptions): Promise<Sluice>;
  /**
   * Runs one statement directly on the store's database, to simulate what the
   * API cannot cause (a stalled lease holder). `{schema}` becomes the schema
   * prefix, `{past}` a time long gone in the store's units, `{id}` the id given.
   */
  sql(statement: string, id?: string): Promise<void>;
  /** Closes every instance opened and removes the store. */
  cleanup(): Promise<void>;
}

/** Creates an empty store of a kind. */
export async function createTestStore(kind: StoreKind): Promise<TestStore> {
  const opened: Sluice[] = [];
  let location: StoreLocation;
  let remove: () => Promise<void>;
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-'));
    location = { store: 'sqlite', path: path.join(dir, 'sluice.db') };
    remove = async () => fs.rmSync(dir, { recursive: true, force: true });
  } else {
    const schema = `sluice_t_${randomBytes(6).toString('hex')}`;
    location = { store: 'postgres', url: PG_URL, schema };
    remove = async () => {
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await client.end();
      }
    };
  }
  const sql = async (statement: string, id?: string) => {
    if (kind === 'sqlite') {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database((location as { path: string }).path, { timeout: 5_000 });
      try {
        db.exec(
          statement
            .replaceAll('{schema}', '')
            .replaceAll('{past}', '0')
            .replaceAll('{id}', id ?? '0'),
        );
      } finally {
        db.close();
      }
      return;
    }
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const schema = (location as { schema: string }).schema;
      await client.query(
        statement
          .replaceAll('{schema}', `${schema}.`)
          .replaceAll('{past}', `'2000-01-01T00:00:00Z'`)
          .replaceAll('{id}', id ?? '0'),
      );
    } finally {
      await client.end();
    }
  };
  return {
    kind,
    location,
    sql,
    async open(options?: SluiceOptions) {
      const sluice = await Sluice.open(location, { logger: memoryLogger(), ...options });
      opened.push(sluice);
      return sluice;
    },
    async cleanup() {
      await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
      await remove();
    },
  };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<Exclude<T, undefined | false>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: T | undefined;
  for (;;) {
    last = await check();
    if (last !== undefined && last !== false) return last as Exclude<T, undefined | false>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'a condition'}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves when `count` events have been seen by `record`. */
export function counter(count: number): { hit: () => void; done: Promise<void>; seen: () => number } {
  let seen = 0;
  let resolve: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  if (count === 0) resolve();
  return {
    hit: () => {
      seen += 1;
      if (seen === count) resolve();
    },
    done,
    seen: () => seen,
  };
}

/**
 * Registers before/after hooks giving each test a fresh store of `kind`.
 * Call inside a describe block; read `.current` inside tests.
 */
export function freshStorePerTest(
  kind: StoreKind,
  hooks: { beforeEach: (fn: () => Promise<void>) => void; afterEach: (fn: () => Promise<void>) => void },
): { current: TestStore } {
  const holder = {} as { current: TestStore };
  hooks.beforeEach(async () => {
    holder.current = await createTestStore(kind);
  });
  hooks.afterEach(async () => {
    await holder.current.cleanup();
  });
  return holder;
}
