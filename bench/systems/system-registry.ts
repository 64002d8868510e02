import type { QueueSystem } from './queue-system.js';

/** Every system the harness knows, in table order: Sluice first, then the peers. */
export const SYSTEM_NAMES = ['sluice-sqlite', 'sluice-postgres', 'bullmq', 'pg-boss', 'graphile-worker'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

export function isSystemName(name: string): name is SystemName {
  return (SYSTEM_NAMES as readonly string[]).includes(name);
}

/**
 * Loads one adapter. Imported lazily so that a system whose library is missing
 * or broken fails alone, in its own child process.
 */
export async function loadSystem(name: SystemName): Promise<QueueSystem> {
  switch (name) {
    case 'sluice-sqlite':
      return (await import('./sluice-sqlite.js')).sluiceSqlite;
    case 'sluice-postgres':
      return (await import('./sluice-postgres.js')).sluicePostgres;
    case 'bullmq':
      return (await import('./bullmq.js')).bullmq;
    case 'pg-boss':
      return (await import('./pg-boss.js')).pgBoss;
    case 'graphile-worker':
      return (await import('./graphile-worker.js')).graphileWorker;
  }
}
