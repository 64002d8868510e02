import { FIGURES, type FigureSpec, formatValue } from './figures.js';
import { advantage, type BenchReport, bestPeer, type TargetCheck } from './report.js';

/** W4 counts the send rate as held at this share of the target rate. */
const HELD_SHARE = 0.98;
const MEMORY_LIMIT_MB = 150;
/** Memory counts as flat when the largest backlog's RSS is within this factor of the smallest's. */
const FLAT_FACTOR = 1.25;

function figure(id: string): FigureSpec {
  return FIGURES.find((f) => f.id === id) as FigureSpec;
}

function med(report: BenchReport, system: string, id: string): number | null {
  return report.results[system]?.[id]?.median ?? null;
}

const LABELS: Record<string, string> = { 'sluice-sqlite': 'Sluice/SQLite', 'sluice-postgres': 'Sluice/PostgreSQL' };

function label(report: BenchReport, system: string): string {
  return report.systems.find((s) => s.name === system)?.label ?? LABELS[system] ?? system;
}

/** Sluice on one store must be `factor` times the best peer (of the given stores). */
function versusPeer(
  report: BenchReport,
  system: string,
  id: string,
  factor: number,
  peers: 'all' | 'postgres',
): TargetCheck {
  const f = figure(id);
  const stores = peers === 'postgres' ? (['postgres'] as const) : undefined;
  const target = `${f.label}: ${label(report, system)} ≥ ${factor}x best ${peers === 'postgres' ? 'PostgreSQL ' : ''}peer`;
  const mine = med(report, system, id);
  const best = bestPeer(report, f, stores ? [...stores] : undefined);
  if (mine === null || best === null) return { target, measured: 'not measured', met: null };
  const ratio = advantage(f, mine, best.value);
  return {
    target,
    measured: `${ratio.toFixed(2)}x (${formatValue(mine, f.unit)} vs ${label(report, best.system)} ${formatValue(best.value, f.unit)} ${f.unit})`,
    met: ratio >= factor,
  };
}

/** Adds the store's slowest bare commit during the same runs (figure `probeId`) to a latency check's line. */
function withStoreFloor(report: BenchReport, system: string, probeId: string, check: TargetCheck): TargetCheck {
  const floor = med(report, system, probeId);
  if (check.met === null || floor === null) return check;
  return {
    ...check,
    measured: `${check.measured} (slowest bare commit on the store meanwhile, median of runs: ${formatValue(floor, 'ms')} ms)`,
  };
}

function threshold(
  report: BenchReport,
  system: string,
  id: string,
  limit: number,
  op: '<' | '≤' | '≥',
  what: string,
): TargetCheck {
  const f = figure(id);
  const target = `${f.label}: ${label(report, system)} ${op} ${what}`;
  const v = med(report, system, id);
  if (v === null) return { target, measured: 'not measured', met: null };
  const met = op === '<' ? v < limit : op === '≤' ? v <= limit : v >= limit;
  return { target, measured: `${formatValue(v, f.unit)} ${f.unit}`, met };
}

/**
 * W1 one at a time on SQLite must reach 80% of the disk's fsync rate. Each run
 * probes the disk right around its sends and reports its share of that rate;
 * the target takes the median share. Reports from before that probe existed
 * are judged against the machine's probe at the start of the run.
 */
function sequentialVersusDisk(report: BenchReport, system: string): TargetCheck {
  const f = figure('w1.seq');
  const target = `${f.label}: ${label(report, system)} ≥ 80% of the disk's fsync rate`;
  const rate = med(report, system, 'w1.seq');
  if (rate === null) return { target, measured: 'not measured', met: null };
  const share = med(report, system, 'w1.seqShare');
  const disk = med(report, system, 'w1.seqDisk');
  const start = report.machine.fsyncPerSec;
  const atStart = `${Math.round(start).toLocaleString('en-US')}/s probed at the start of the run`;
  if (share === null || disk === null) {
    return {
      target,
      measured: `${((100 * rate) / start).toFixed(0)}% (${formatValue(rate, f.unit)} msg/s vs ${atStart})`,
      met: rate >= 0.8 * start,
    };
  }
  return {
    target,
    measured: `${share.toFixed(0)}% median of runs (${formatValue(rate, f.unit)} msg/s; disk ${formatValue(disk, 'fsync/s')} fsync/s around the sends, ${atStart})`,
    met: share >= 80,
  };
}

/** Judges the targets on the medians of this report. */
export function checkTargets(report: BenchReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const sq = 'sluice-sqlite';
  const pgs = 'sluice-postgres';
  checks.push(versusPeer(report, sq, 'w1.c64', 3, 'all'));
  checks.push(versusPeer(report, sq, 'w1.bulk', 3, 'all'));
  checks.push(sequentialVersusDisk(report, sq));
  for (const id of ['w1.seq', 'w1.c64', 'w1.bulk']) checks.push(versusPeer(report, pgs, id, 3, 'postgres'));
  checks.push(versusPeer(report, sq, 'w2.c32', 2, 'all'));
  checks.push(versusPeer(report, pgs, 'w2.c32', 2, 'postgres'));
  checks.push(versusPeer(report, sq, 'w3.p99', 1, 'all'));
  checks.push(withStoreFloor(report, pgs, 'w3.commitMax', threshold(report, pgs, 'w3.p99', 10, '<', '10 ms')));
  const rate = report.params.spikeRate;
  for (const system of [sq, pgs]) {
    checks.push(
      threshold(
        report,
        system,
        'w4.rate',
        rate * HELD_SHARE,
        '≥',
        `${rate.toLocaleString('en-US')}/s held (≥ ${HELD_SHARE * 100}%)`,
      ),
    );
    checks.push(withStoreFloor(report, system, 'w4.commitMax', threshold(report, system, 'w4.p99', 10, '<', '10 ms')));
    checks.push(threshold(report, system, 'w4.drain', 500, '≤', '500 ms'));
  }
  const levels = report.params.memoryLevels;
  const largest = levels[levels.length - 1] as number;
  const smallest = levels[0] as number;
  for (const system of [sq, pgs]) {
    const top = med(report, system, `mem.${largest}`);
    const low = med(report, system, `mem.${smallest}`);
    const name = label(report, system);
    checks.push({
      target: `MEM: ${name} worker RSS < ${MEMORY_LIMIT_MB} MB with a ${largest.toLocaleString('en-US')} backlog`,
      measured: top === null ? 'not measured' : `${top.toFixed(1)} MB`,
      met: top === null ? null : top < MEMORY_LIMIT_MB,
    });
    checks.push({
      target: `MEM: ${name} RSS flat from ${smallest.toLocaleString('en-US')} to ${largest.toLocaleString('en-US')} (growth ≤ ${Math.round((FLAT_FACTOR - 1) * 100)}%)`,
      measured:
        top === null || low === null
          ? 'not measured'
          : `${low.toFixed(1)} → ${top.toFixed(1)} MB (${((top / low - 1) * 100).toFixed(0)}%)`,
      met: top === null || low === null ? null : top <= low * FLAT_FACTOR,
    });
  }
  return checks;
}
