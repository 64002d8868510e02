import { parseArgs } from 'node:util';
import { SYSTEM_NAMES, type SystemName } from '../systems/system-registry.js';
import { WORKLOAD_IDS, type WorkloadId } from '../workloads/workload.js';
import type { BenchReport } from './report.js';

/** A mistake in the command line: printed as one line with the usage, exit code 2, no stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `usage: npm run bench -- [options]

  --runs N            runs per figure (default 3, or 1 with --quick; at most 20)
  --quick             small sizes and one run: a smoke check in about three minutes
  --only a,b          systems: ${SYSTEM_NAMES.join(', ')}
  --workloads W1,W3   workloads: ${WORKLOAD_IDS.join(', ')}
  --out DIR           where latest.json / .txt / .svg / .png go (default bench/results)
  --render FILE       no runs: write latest.* again from a saved report (a stamped .json); takes only --out
  --help              this text`;

const MAX_RUNS = 20;

/** What an invocation asks for. */
export type BenchCommand =
  | { kind: 'help' }
  | { kind: 'render'; file: string; out: string | undefined }
  | {
      kind: 'run';
      quick: boolean;
      runs: number;
      systems: SystemName[];
      workloads: WorkloadId[];
      out: string | undefined;
      /** True when the run covers fewer systems or workloads than a full run, or is --quick. */
      partial: boolean;
    };

/** Parses the benchmark's command line; throws UsageError with what was wrong and what to do. */
export function parseBenchArgs(args: string[]): BenchCommand {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        runs: { type: 'string' },
        quick: { type: 'boolean' },
        only: { type: 'string' },
        workloads: { type: 'string' },
        out: { type: 'string' },
        render: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    // parseArgs's own text for an unknown option goes on about positionals; name the option instead.
    const unknown = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'([^']+)'/.exec(e.message)?.[1] : undefined;
    if (unknown !== undefined) throw new UsageError(`unknown option ${unknown}; the options are listed below`);
    // The rest explain themselves ("Option '--runs <value>' argument missing").
    throw new UsageError(e.message.split('\n')[0] as string);
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"; options start with --`);
  }
  if (values.help === true) return { kind: 'help' };
  const out = values.out as string | undefined;
  if (out === '') throw new UsageError('--out needs a folder');
  if (values.render !== undefined) {
    const others = ['runs', 'quick', 'only', 'workloads'].filter((k) => values[k] !== undefined);
    if (others.length > 0) {
      throw new UsageError(`--render writes a saved report again and runs nothing; drop --${others.join(', --')}`);
    }
    if (values.render === '') throw new UsageError('--render needs a saved report, e.g. bench/results/latest.json');
    return { kind: 'render', file: values.render as string, out };
  }
  const quick = values.quick === true;
  const runs = values.runs === undefined ? (quick ? 1 : 3) : wholeNumber(values.runs as string);
  const systems = list(values.only as string | undefined, SYSTEM_NAMES, '--only', 'system');
  const workloads = list(values.workloads as string | undefined, WORKLOAD_IDS, '--workloads', 'workload');
  const partial = quick || systems.length < SYSTEM_NAMES.length || workloads.length < WORKLOAD_IDS.length;
  return { kind: 'run', quick, runs, systems, workloads, out, partial };
}

function wholeNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < 1 || n > MAX_RUNS) {
    throw new UsageError(`--runs must be a whole number from 1 to ${MAX_RUNS}, not "${text}"`);
  }
  return n;
}

function list<T extends string>(value: string | undefined, all: readonly T[], flag: string, what: string): T[] {
  if (value === undefined) return [...all];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new UsageError(`${flag} needs at least one ${what}: ${all.join(', ')}`);
  const unknown = items.filter((item) => !(all as readonly string[]).includes(item));
  if (unknown.length > 0) {
    throw new UsageError(`unknown ${what} "${unknown.join('", "')}" in ${flag}; choose from ${all.join(', ')}`);
  }
  return [...new Set(items)] as T[];
}

/**
 * Reads a report saved by an earlier run, for --render. Checks the parts the
 * table and chart read, so a wrong file is a clear message, not a crash.
 */
export function parseSavedReport(text: string, file: string): BenchReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not JSON (${(error as Error).message}); pass a report from bench/results`);
  }
  const r = value as Partial<BenchReport> | null;
  const missing =
    r === null || typeof r !== 'object'
      ? ['everything']
      : (['startedAt', 'machine', 'params', 'systems', 'figures', 'results', 'targets'] as const).filter(
          (k) => r[k] === undefined || r[k] === null,
        );
  if (missing.length > 0 || !Array.isArray(r?.systems) || !Array.isArray(r?.figures) || !Array.isArray(r?.targets)) {
    throw new UsageError(
      `${file} is not a benchmark report (missing ${missing.length > 0 ? missing.join(', ') : 'lists of systems, figures or targets'}); pass a report from bench/results`,
    );
  }
  return { notes: [], failures: [], loadAverageEnd: [], ...r } as BenchReport;
}
