import type { WorkloadId } from '../workloads/workload.js';

/** What one figure id means, how to print it, and which direction is better. */
export interface FigureSpec {
  id: string;
  workload: WorkloadId;
  label: string;
  unit: 'msg/s' | 'fsync/s' | '%' | 'ms' | 'MB';
  better: 'higher' | 'lower';
  /** Only Sluice runs this (ordering keys, fan-out, memory at smaller backlogs). */
  sluiceOnly?: boolean;
}

/** Every figure in table order. Memory ids depend on the backlog sizes and are added by `memoryFigures`. */
export const FIGURES: FigureSpec[] = [
  { id: 'w1.seq', workload: 'W1', label: 'W1 send, awaited one at a time', unit: 'msg/s', better: 'higher' },
  {
    id: 'w1.seqDisk',
    workload: 'W1',
    label: 'W1 disk fsync rate around the one-at-a-time sends',
    unit: 'fsync/s',
    better: 'higher',
    sluiceOnly: true,
  },
  {
    id: 'w1.seqShare',
    workload: 'W1',
    label: 'W1 one-at-a-time sends as a share of that rate',
    unit: '%',
    better: 'higher',
    sluiceOnly: true,
  },
  { id: 'w1.c64', workload: 'W1', label: 'W1 send, 64 in flight', unit: 'msg/s', better: 'higher' },
  { id: 'w1.bulk', workload: 'W1', label: 'W1 send, bulk of 1,000', unit: 'msg/s', better: 'higher' },
  { id: 'w2.c1', workload: 'W2', label: 'W2 drain, concurrency 1', unit: 'msg/s', better: 'higher' },
  { id: 'w2.c32', workload: 'W2', label: 'W2 drain, concurrency 32', unit: 'msg/s', better: 'higher' },
  {
    id: 'w2k.c32',
    workload: 'W2k',
    label: 'W2k drain, 1,000 ordering keys, c32',
    unit: 'msg/s',
    better: 'higher',
    sluiceOnly: true,
  },
  {
    id: 'w2f.c32',
    workload: 'W2f',
    label: 'W2f drain, fan-out to 3 queues, c32 each',
    unit: 'msg/s',
    better: 'higher',
    sluiceOnly: true,
  },
  { id: 'w3.p50', workload: 'W3', label: 'W3 send→handler p50', unit: 'ms', better: 'lower' },
  { id: 'w3.p95', workload: 'W3', label: 'W3 send→handler p95', unit: 'ms', better: 'lower' },
  { id: 'w3.p99', workload: 'W3', label: 'W3 send→handler p99', unit: 'ms', better: 'lower' },
  { id: 'w3.max', workload: 'W3', label: 'W3 send→handler max', unit: 'ms', better: 'lower' },
  {
    id: 'w3.commitMax',
    workload: 'W3',
    label: 'W3 slowest bare commit on the store meanwhile',
    unit: 'ms',
    better: 'lower',
    sluiceOnly: true,
  },
  { id: 'w4.rate', workload: 'W4', label: 'W4 achieved send rate', unit: 'msg/s', better: 'higher' },
  { id: 'w4.p99', workload: 'W4', label: 'W4 send latency p99', unit: 'ms', better: 'lower' },
  {
    id: 'w4.p99Slot',
    workload: 'W4',
    label: 'W4 send latency p99, from its scheduled time',
    unit: 'ms',
    better: 'lower',
  },
  { id: 'w4.drain', workload: 'W4', label: 'W4 drain after last send', unit: 'ms', better: 'lower' },
  {
    id: 'w4.commitMax',
    workload: 'W4',
    label: 'W4 slowest bare commit on the store meanwhile',
    unit: 'ms',
    better: 'lower',
    sluiceOnly: true,
  },
];

export function memoryFigures(levels: number[]): FigureSpec[] {
  return levels.map((level, i) => ({
    id: `mem.${level}`,
    workload: 'MEM' as const,
    label: `MEM worker RSS, backlog ${level.toLocaleString('en-US')}`,
    unit: 'MB' as const,
    better: 'lower' as const,
    sluiceOnly: i < levels.length - 1,
  }));
}

/** Formats a value for a table cell. */
export function formatValue(value: number, unit: FigureSpec['unit']): string {
  if (!Number.isFinite(value)) return '—';
  if (unit === 'msg/s' || unit === 'fsync/s') return Math.round(value).toLocaleString('en-US');
  if (unit === '%') return value.toFixed(0);
  if (unit === 'MB') return value.toFixed(1);
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return Math.round(value).toLocaleString('en-US');
}
