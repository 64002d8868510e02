import type { StoreKind } from '../systems/queue-system.js';
import type { Params } from '../workloads/workload.js';
import { type FigureSpec, formatValue } from './figures.js';
import type { MachineFacts } from './machine.js';
import { type Spread, spread } from './stats.js';

/** A system as reported: what it is and whether it could run here. */
export interface SystemEntry {
  name: string;
  label: string;
  store: StoreKind;
  peer: boolean;
  durability: string;
  settings: string;
  available: boolean;
  reason?: string;
}

export interface RunFailure {
  system: string;
  workload: string;
  mode: string;
  run: number;
  status: string;
  error: string;
}

export interface FigureResult extends Spread {
  values: number[];
}

/** One checked target from the issue, judged on medians. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** null when a figure it needs is missing. */
  met: boolean | null;
}

/** Everything a benchmark invocation produced; written as JSON. */
export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  mode: 'full' | 'quick';
  runs: number;
  params: Params;
  machine: MachineFacts;
  loadAverageEnd: number[];
  systems: SystemEntry[];
  figures: FigureSpec[];
  /** system → figure id → values of each run and their median/min/max. */
  results: Record<string, Record<string, FigureResult>>;
  notes: { system: string; note: string }[];
  failures: RunFailure[];
  targets: TargetCheck[];
}

/** Collects per-run values; summarises them into FigureResults. */
export function summarise(values: Record<string, Record<string, number[]>>): BenchReport['results'] {
  const out: BenchReport['results'] = {};
  for (const [system, figures] of Object.entries(values)) {
    out[system] = {};
    for (const [id, list] of Object.entries(figures)) {
      const s = spread(list);
      if (s !== null) (out[system] as Record<string, FigureResult>)[id] = { ...s, values: list };
    }
  }
  return out;
}

function median(report: Pick<BenchReport, 'results'>, system: string, id: string): number | null {
  return report.results[system]?.[id]?.median ?? null;
}

/** The best peer's median for a figure, among peers on the given stores (all when omitted). */
export function bestPeer(
  report: Pick<BenchReport, 'results' | 'systems'>,
  figure: FigureSpec,
  stores?: StoreKind[],
): { system: string; value: number } | null {
  let best: { system: string; value: number } | null = null;
  for (const s of report.systems) {
    if (!s.peer || (stores !== undefined && !stores.includes(s.store))) continue;
    const v = median(report, s.name, figure.id);
    if (v === null) continue;
    const better = best === null || (figure.better === 'higher' ? v > best.value : v < best.value);
    if (better) best = { system: s.name, value: v };
  }
  return best;
}

/** Sluice's advantage over a peer value: above 1 means Sluice is better, whichever direction "better" is. */
export function advantage(figure: FigureSpec, sluice: number, peer: number): number {
  return figure.better === 'higher' ? sluice / peer : peer / sluice;
}

function cell(result: FigureResult | undefined, unit: FigureSpec['unit'], runs: number): string {
  if (result === undefined) return '';
  const m = formatValue(result.median, unit);
  if (runs <= 1 || result.runs <= 1) return m;
  return `${m} [${formatValue(result.min, unit)}–${formatValue(result.max, unit)}]`;
}

function ratioCell(report: BenchReport, figure: FigureSpec, system: string, stores?: StoreKind[]): string {
  const mine = median(report, system, figure.id);
  const best = bestPeer(report, figure, stores);
  if (mine === null || best === null) return '';
  const label = report.systems.find((s) => s.name === best.system)?.label ?? best.system;
  return `${advantage(figure, mine, best.value).toFixed(2)}x (${label})`;
}

function pad(text: string, width: number, right = false): string {
  const gap = ' '.repeat(Math.max(0, width - [...text].length));
  return right ? gap + text : text + gap;
}

/** The readable table: one row per figure, one column per system, ratio columns, then targets and legend. */
export function renderTable(report: BenchReport): string {
  const systems = report.systems.filter((s) => s.available);
  const header = [
    'figure',
    'unit',
    ...systems.map((s) => s.label),
    'Sluice/SQLite vs best peer',
    'Sluice/PG vs best PG peer',
  ];
  const rows: string[][] = [];
  let lastWorkload = '';
  for (const figure of report.figures) {
    const any = systems.some((s) => report.results[s.name]?.[figure.id] !== undefined);
    if (!any) continue;
    if (figure.workload !== lastWorkload && rows.length > 0) rows.push([]);
    lastWorkload = figure.workload;
    rows.push([
      figure.label,
      figure.unit,
      ...systems.map((s) => cell(report.results[s.name]?.[figure.id], figure.unit, report.runs)),
      figure.sluiceOnly ? '' : ratioCell(report, figure, 'sluice-sqlite'),
      figure.sluiceOnly ? '' : ratioCell(report, figure, 'sluice-postgres', ['postgres']),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) => r.map((c, i) => pad(c, widths[i] as number, i >= 2)).join('  ');
  const out: string[] = [];
  const m = report.machine;
  out.push(
    `Sluice benchmark, ${report.startedAt} (${report.mode}, ${report.runs} run(s) per figure; median [min–max])`,
  );
  out.push(`Sluice ${m.sluiceCommit}`);
  out.push(`Machine: ${m.cpus} × ${m.cpu}, ${m.memoryGb} GB RAM, ${m.os}, Node ${m.node}`);
  out.push(`Disk: ${m.disk} (data in ${m.dataDir}); fsync (write+fdatasync) ${Math.round(m.fsyncPerSec)}/s`);
  out.push(
    `${m.postgres}: ${Math.round(m.postgresCommitsPerSec)} single-row commits/s from one connection (${m.postgresSettings})`,
  );
  out.push(`${m.redis}: ${m.redisPersistence}`);
  out.push(`Load average at start ${m.loadAverageStart.join(' ')}, at end ${report.loadAverageEnd.join(' ')}`);
  out.push('');
  out.push(line(header));
  out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out.push(r.length === 0 ? '' : line(r));
  out.push('');
  out.push(
    "Ratios: Sluice figure over the best peer's (for latency and memory, the peer's over Sluice's): above 1 is Sluice ahead.",
  );
  out.push('');
  out.push('Targets (medians):');
  for (const t of report.targets) {
    const mark = t.met === null ? 'n/a   ' : t.met ? 'MET   ' : 'MISSED';
    out.push(`  ${mark} ${t.target}: ${t.measured}`);
  }
  out.push('');
  out.push('Systems (durability; settings):');
  for (const s of report.systems) {
    out.push(`  ${s.label}${s.available ? '' : ` — UNAVAILABLE: ${s.reason ?? ''}`}`);
    out.push(`    durability: ${s.durability}`);
    out.push(`    settings:   ${s.settings}`);
  }
  if (report.notes.length > 0) {
    out.push('');
    out.push('Notes:');
    const seen = new Set<string>();
    for (const n of report.notes) {
      const text = `  ${report.systems.find((s) => s.name === n.system)?.label ?? n.system}: ${n.note}`;
      if (!seen.has(text)) out.push(text);
      seen.add(text);
    }
  }
  if (report.failures.length > 0) {
    out.push('');
    out.push('Failed or timed-out runs:');
    for (const f of report.failures) {
      out.push(`  ${f.system} ${f.workload} ${f.mode} run ${f.run}: ${f.status}: ${f.error}`);
    }
  }
  out.push('');
  out.push(`Took ${Math.round(report.durationSeconds)} s.`);
  return out.join('\n');
}
