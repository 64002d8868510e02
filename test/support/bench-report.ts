/** Benchmark reports with known values, for tests of the benchmark's judgement, table and chart. */
import { FIGURES, memoryFigures } from '../../bench/lib/figures.js';
import { type BenchReport, summarise } from '../../bench/lib/report.js';
import { checkTargets } from '../../bench/lib/targets.js';
import { QUICK_PARAMS } from '../../bench/workloads/workload.js';

export const SYSTEMS: BenchReport['systems'] = [
  ['sluice-sqlite', 'Sluice/SQLite', 'sqlite', false],
  ['sluice-postgres', 'Sluice/PostgreSQL', 'postgres', false],
  ['bullmq', 'BullMQ', 'redis', true],
  ['pg-boss', 'pg-boss', 'postgres', true],
  ['graphile-worker', 'Graphile Worker', 'postgres', true],
].map(([name, label, store, peer]) => ({
  name: name as string,
  label: label as string,
  store: store as 'sqlite' | 'postgres' | 'redis',
  peer: peer as boolean,
  durability: `${label as string} durability statement`,
  settings: `${label as string} settings statement`,
  available: true,
}));

/** A report whose figures are the given per-run values (system → figure id → values). */
export function report(values: Record<string, Record<string, number[]>>): BenchReport {
  const params = { ...QUICK_PARAMS, memoryLevels: [1_000, 5_000] };
  const r: BenchReport = {
    startedAt: '2026-12-01T00:00:00.000Z',
    finishedAt: '2026-12-01T00:10:00.000Z',
    durationSeconds: 600,
    mode: 'quick',
    runs: 3,
    params,
    machine: {
      cpu: 'Test CPU',
      cpus: 2,
      memoryGb: 8,
      os: 'Linux',
      node: 'v20',
      disk: '/dev/test ext4',
      dataDir: '/tmp/x',
      fsyncPerSec: 5_000,
      postgres: 'PostgreSQL 15',
      postgresSettings: 'fsync=on',
      postgresCommitsPerSec: 2_500,
      redis: 'Redis 7',
      redisPersistence: 'save=""',
      loadAverageStart: [0, 0, 0],
      sluiceCommit: 'abc1234',
    },
    loadAverageEnd: [0, 0, 0],
    systems: SYSTEMS,
    figures: [...FIGURES, ...memoryFigures(params.memoryLevels)],
    results: summarise(values),
    notes: [],
    failures: [],
    targets: [],
  };
  r.targets = checkTargets(r);
  return r;
}
