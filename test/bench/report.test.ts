/**
 * The benchmark's arithmetic and judgement: medians over runs, which peer is
 * "best" for a figure, the direction of a ratio, and each of the issue's
 * targets, on reports built here with known values.
 */
import { describe, expect, it } from 'vitest';
import { FIGURES, type FigureSpec } from '../../bench/lib/figures.js';
import { advantage, type BenchReport, bestPeer, renderTable, summarise } from '../../bench/lib/report.js';
import { latencySummary, percentile, spread } from '../../bench/lib/stats.js';
import { QUICK_PARAMS } from '../../bench/workloads/workload.js';
import { report, SYSTEMS } from '../support/bench-report.js';

function target(r: BenchReport, startsWith: string) {
  const found = r.targets.filter((t) => t.target.startsWith(startsWith));
  expect(found, `one target line starting "${startsWith}"`).toHaveLength(1);
  return found[0] as (typeof found)[number];
}

const fig = (id: string) => FIGURES.find((f) => f.id === id) as FigureSpec;

describe('benchmark statistics', () => {
  it('takes percentiles by nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
    expect(percentile(values, 1)).toBe(100);
    expect(percentile(values, 0)).toBe(1);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
    expect(latencySummary([3, 1, 2])).toEqual({ p50: 2, p95: 3, p99: 3, max: 3, count: 3 });
  });

  it('summarises runs as median, min and max, skipping values that are not finite', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, runs: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, runs: 4 });
    expect(spread([5, Number.NaN, Number.POSITIVE_INFINITY])).toEqual({ median: 5, min: 5, max: 5, runs: 1 });
    expect(spread([Number.NaN])).toBeNull();
    expect(spread([])).toBeNull();
    const results = summarise({ bullmq: { 'w1.c64': [10, 30, 20], 'w1.seq': [Number.NaN] } });
    expect(results.bullmq?.['w1.c64']).toEqual({ median: 20, min: 10, max: 30, runs: 3, values: [10, 30, 20] });
    expect(results.bullmq?.['w1.seq']).toBeUndefined();
  });
});

describe('best peer and ratios', () => {
  const r = report({
    'sluice-sqlite': { 'w1.c64': [90_000], 'w3.p99': [2] },
    bullmq: { 'w1.c64': [30_000], 'w3.p99': [4] },
    'pg-boss': { 'w1.c64': [3_000], 'w3.p99': [500] },
    'graphile-worker': { 'w1.c64': [1_500], 'w3.p99': [8] },
  });

  it('is the highest throughput or the lowest latency among peers, never Sluice itself', () => {
    expect(bestPeer(r, fig('w1.c64'))).toEqual({ system: 'bullmq', value: 30_000 });
    expect(bestPeer(r, fig('w3.p99'))).toEqual({ system: 'bullmq', value: 4 });
  });

  it('can be limited to PostgreSQL peers', () => {
    expect(bestPeer(r, fig('w1.c64'), ['postgres'])).toEqual({ system: 'pg-boss', value: 3_000 });
    expect(bestPeer(r, fig('w3.p99'), ['postgres'])).toEqual({ system: 'graphile-worker', value: 8 });
  });

  it('is null when no peer measured the figure', () => {
    expect(bestPeer(r, fig('w2.c32'))).toBeNull();
  });

  it('reads above 1 as Sluice ahead, for throughput and for latency alike', () => {
    expect(advantage(fig('w1.c64'), 90_000, 30_000)).toBe(3);
    expect(advantage(fig('w3.p99'), 2, 4)).toBe(2);
    expect(advantage(fig('w3.p99'), 8, 4)).toBe(0.5);
  });
});

describe('targets', () => {
  it('meets a ratio target at exactly the factor and misses it just below', () => {
    const at = report({ 'sluice-sqlite': { 'w1.c64': [90_000] }, bullmq: { 'w1.c64': [30_000] } });
    const below = report({ 'sluice-sqlite': { 'w1.c64': [89_700] }, bullmq: { 'w1.c64': [30_000] } });
    expect(target(at, 'W1 send, 64 in flight: Sluice/SQLite').met).toBe(true);
    expect(target(at, 'W1 send, 64 in flight: Sluice/SQLite').measured).toContain('3.00x');
    expect(target(below, 'W1 send, 64 in flight: Sluice/SQLite').met).toBe(false);
    expect(target(below, 'W1 send, 64 in flight: Sluice/SQLite').measured).toContain('2.99x');
  });

  it('judges on the median of the runs, not the best run', () => {
    const r = report({ 'sluice-sqlite': { 'w1.c64': [200_000, 60_000, 50_000] }, bullmq: { 'w1.c64': [30_000] } });
    expect(target(r, 'W1 send, 64 in flight: Sluice/SQLite').met).toBe(false);
  });

  it('compares Sluice/PostgreSQL with PostgreSQL peers only, even when Redis is faster', () => {
    const r = report({
      'sluice-postgres': { 'w2.c32': [40_000] },
      bullmq: { 'w2.c32': [100_000] },
      'pg-boss': { 'w2.c32': [3_000] },
      'graphile-worker': { 'w2.c32': [20_000] },
    });
    const t = target(r, 'W2 drain, concurrency 32: Sluice/PostgreSQL');
    expect(t.met).toBe(true);
    expect(t.measured).toContain('Graphile Worker');
    expect(t.measured).toContain('2.00x');
  });

  it('wants W3 p99 at or below the best peer on SQLite and under 10 ms on PostgreSQL', () => {
    const r = report({
      'sluice-sqlite': { 'w3.p99': [4.1] },
      'sluice-postgres': { 'w3.p99': [9.99], 'w3.commitMax': [3] },
      bullmq: { 'w3.p99': [4] },
    });
    expect(target(r, 'W3 send→handler p99: Sluice/SQLite').met).toBe(false);
    const pg = target(r, 'W3 send→handler p99: Sluice/PostgreSQL');
    expect(pg.met).toBe(true);
    expect(pg.measured).toContain('slowest bare commit on the store meanwhile, median of runs: 3.00 ms');
    const slow = report({ 'sluice-postgres': { 'w3.p99': [10] } });
    expect(target(slow, 'W3 send→handler p99: Sluice/PostgreSQL').met).toBe(false);
  });

  it('judges one-at-a-time SQLite sends on their share of the disk rate probed around them', () => {
    const r = report({ 'sluice-sqlite': { 'w1.seq': [4_000], 'w1.seqDisk': [5_000], 'w1.seqShare': [79, 81, 80] } });
    const t = target(r, "W1 send, awaited one at a time: Sluice/SQLite ≥ 80% of the disk's fsync rate");
    expect(t.met).toBe(true);
    expect(t.measured).toContain('80% median of runs');
    // Without the probe around the sends, the machine's probe at the start of the run is the reference.
    const old = report({ 'sluice-sqlite': { 'w1.seq': [3_900] } });
    expect(target(old, "W1 send, awaited one at a time: Sluice/SQLite ≥ 80% of the disk's fsync rate").met).toBe(false);
  });

  it('counts the W4 rate as held at 98% of the offered rate, and wants p99 < 10 ms and drain ≤ 500 ms', () => {
    const rate = QUICK_PARAMS.spikeRate;
    const r = report({
      'sluice-sqlite': { 'w4.rate': [rate * 0.98], 'w4.p99': [9.9], 'w4.drain': [500] },
      'sluice-postgres': { 'w4.rate': [rate * 0.97], 'w4.p99': [10], 'w4.drain': [501] },
    });
    expect(target(r, 'W4 achieved send rate: Sluice/SQLite').met).toBe(true);
    expect(target(r, 'W4 send latency p99: Sluice/SQLite').met).toBe(true);
    expect(target(r, 'W4 drain after last send: Sluice/SQLite').met).toBe(true);
    expect(target(r, 'W4 achieved send rate: Sluice/PostgreSQL').met).toBe(false);
    expect(target(r, 'W4 send latency p99: Sluice/PostgreSQL').met).toBe(false);
    expect(target(r, 'W4 drain after last send: Sluice/PostgreSQL').met).toBe(false);
  });

  it('wants worker RSS under 150 MB at the largest backlog and within 25% of the smallest', () => {
    const r = report({
      'sluice-sqlite': { 'mem.1000': [100], 'mem.5000': [125] },
      'sluice-postgres': { 'mem.1000': [100], 'mem.5000': [126] },
    });
    expect(target(r, 'MEM: Sluice/SQLite worker RSS < 150 MB').met).toBe(true);
    expect(target(r, 'MEM: Sluice/SQLite RSS flat').met).toBe(true);
    expect(target(r, 'MEM: Sluice/PostgreSQL RSS flat').met).toBe(false);
    const big = report({ 'sluice-sqlite': { 'mem.1000': [140], 'mem.5000': [150] } });
    expect(target(big, 'MEM: Sluice/SQLite worker RSS < 150 MB').met).toBe(false);
  });

  it('says "not measured" rather than passing or failing a target whose figures are missing', () => {
    const r = report({ 'sluice-sqlite': { 'w1.c64': [90_000] } });
    const t = target(r, 'W1 send, 64 in flight: Sluice/SQLite');
    expect(t).toMatchObject({ met: null, measured: 'not measured' });
    expect(r.targets.every((x) => x.met === null)).toBe(true);
    expect(r.targets).toHaveLength(20);
  });
});

describe('the table', () => {
  const r = report({
    'sluice-sqlite': { 'w1.c64': [90_000, 80_000, 100_000] },
    'sluice-postgres': { 'w1.c64': [30_000, 30_000, 30_000] },
    bullmq: { 'w1.c64': [30_000, 20_000, 40_000] },
    'pg-boss': { 'w1.c64': [3_000, 3_000, 3_000] },
  });
  r.failures.push({ system: 'pg-boss', workload: 'W2', mode: 'c1', run: 2, status: 'timed out', error: 'killed' });
  const text = renderTable(r);

  it('shows median [min–max] per system and the ratio against the best peer', () => {
    const row = text.split('\n').find((l) => l.startsWith('W1 send, 64 in flight')) as string;
    expect(row).toContain('90,000 [80,000–100,000]');
    expect(row).toContain('30,000 [20,000–40,000]');
    expect(row).toContain('3.00x (BullMQ)');
    expect(row).toContain('10.00x (pg-boss)');
  });

  it('states every system’s durability and settings, the targets, and runs that failed', () => {
    for (const s of SYSTEMS) {
      expect(text).toContain(`durability: ${s.durability}`);
      expect(text).toContain(`settings:   ${s.settings}`);
    }
    expect(text).toContain('  MET    W1 send, 64 in flight: Sluice/SQLite ≥ 3x best peer: 3.00x');
    expect(text).toContain('  MET    W1 send, 64 in flight: Sluice/PostgreSQL ≥ 3x best PostgreSQL peer: 10.00x');
    expect(text).toContain('  n/a    W2 drain, concurrency 32: Sluice/SQLite ≥ 2x best peer: not measured');
    expect(text).toContain('pg-boss W2 c1 run 2: timed out: killed');
    expect(text).toContain('Machine: 2 × Test CPU');
  });

  it('leaves out rows of figures nobody measured', () => {
    const rows = text.slice(0, text.indexOf('Targets (medians)')).split('\n');
    expect(rows.some((l) => l.startsWith('W1 send, 64 in flight'))).toBe(true);
    expect(rows.some((l) => l.startsWith('W2 drain, concurrency 32'))).toBe(false);
  });
});
