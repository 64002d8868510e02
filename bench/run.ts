/**
 * Sluice side-by-side benchmark: `npm run bench -- [options]`; `--help` lists
 * them (lib/cli.ts).
 *
 * Only a full run (every system and workload, not --quick) replaces
 * bench/results/latest.*; a partial run prints its table and writes its
 * stamped .json to bench/results/partial/ (not kept in git), unless --out
 * names another folder for latest.*.
 *
 * Each (system, workload, mode, run) runs in a fresh child process group with
 * a hard time limit; a run that overstays is killed and recorded as timed out,
 * and its queue is cleaned up by another child. Runs are interleaved
 * (run 1 of every system, then run 2, ...) so background noise spreads evenly.
 * See bench/README.md for the methodology.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderPng, renderSvg } from './lib/chart.js';
import { parseBenchArgs, parseSavedReport, USAGE, UsageError } from './lib/cli.js';
import { FIGURES, memoryFigures } from './lib/figures.js';
import { machineFacts } from './lib/machine.js';
import { type ChildOutcome, runIsolated } from './lib/processes.js';
import { quietMachine } from './lib/quiet.js';
import { type BenchReport, type RunFailure, renderTable, type SystemEntry, summarise } from './lib/report.js';
import { spread } from './lib/stats.js';
import { checkTargets } from './lib/targets.js';
import type { Target } from './systems/queue-system.js';
import { loadSystem, type SystemName } from './systems/system-registry.js';
import { FULL_PARAMS, type Params, QUICK_PARAMS, type WorkloadId } from './workloads/workload.js';

const here = path.dirname(fileURLToPath(import.meta.url));

interface Job {
  system: SystemName;
  workload: WorkloadId;
  mode: string;
  run: number;
  timeoutMs: number;
}

function modesOf(workload: WorkloadId): string[] {
  switch (workload) {
    case 'W1':
      return ['seq', 'c64', 'bulk'];
    case 'W2':
      return ['c1', 'c32'];
    case 'W2k':
    case 'W2f':
      return ['c32'];
    default:
      return [''];
  }
}

/** A generous hard limit per run: its own time caps plus set-up, fill and clean-up. */
function timeoutOf(workload: WorkloadId, p: Params): number {
  switch (workload) {
    case 'W1':
      return p.sendCapMs + 90_000;
    case 'W2':
    case 'W2k':
    case 'W2f':
      return p.drainCapMs + 120_000;
    case 'W3':
      return (p.latencyMessages / p.latencyRate) * 1000 + 60_000;
    case 'W4':
      return p.spikeSeconds * 1000 + p.spikeDrainCapMs + 90_000;
    case 'MEM':
      return p.memoryLevels.length * (p.memoryFillCapMs + p.memorySamples * 30_000) + 60_000;
  }
}

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

async function main(): Promise<void> {
  const command = parseBenchArgs(process.argv.slice(2));
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command.kind === 'render') {
    let text: string;
    try {
      text = fs.readFileSync(command.file, 'utf8');
    } catch (error) {
      throw new UsageError(
        `cannot read ${command.file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); pass a report from bench/results`,
      );
    }
    const report = parseSavedReport(text, command.file);
    const outDir = path.resolve(command.out ?? path.join(here, 'results'));
    assertWritableFolder(outDir);
    await writeReport(report, outDir, null);
    return;
  }
  const { quick, runs, systems, workloads } = command;
  const params = quick ? QUICK_PARAMS : FULL_PARAMS;
  const outDir = path.resolve(command.out ?? path.join(here, 'results'));
  // A run takes minutes: find out now, not at the end, that its results could not be written.
  assertWritableFolder(outDir);
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-');

  log(
    `sluice bench: ${quick ? 'quick' : 'full'}, ${runs} run(s), systems ${systems.join(', ')}, workloads ${workloads.join(', ')}`,
  );
  log('measuring the machine (fsync rate, PostgreSQL commits/s, versions)...');
  const machine = await machineFacts();
  log(
    `  fsync ${Math.round(machine.fsyncPerSec)}/s, PostgreSQL ${Math.round(machine.postgresCommitsPerSec)} commits/s`,
  );

  const entries: SystemEntry[] = [];
  for (const name of systems) {
    const system = await loadSystem(name).catch(() => null);
    log(`probing ${name}...`);
    const probe = await runIsolated({ role: 'probe', system: name, runId: `${stamp}_probe` }, 90_000);
    await cleanUp(name, probe);
    entries.push({
      name,
      label: system?.label ?? name,
      store: system?.store ?? 'postgres',
      peer: system?.peer ?? false,
      durability: system?.durability ?? '',
      settings: system?.settings ?? '',
      available: probe.status === 'ok',
      reason: probe.status === 'ok' ? undefined : `${probe.status}: ${probe.error ?? ''}`,
    });
    if (probe.status !== 'ok') log(`  ${name} unavailable: ${probe.error ?? probe.status}`);
  }

  const available = entries.filter((e) => e.available);
  const jobs: Job[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const workload of workloads) {
      // Memory is filled once per system; its samples come from several fresh worker processes instead.
      if (workload === 'MEM' && run > 1) continue;
      for (const mode of modesOf(workload)) {
        for (const e of available) {
          if ((workload === 'W2k' || workload === 'W2f') && e.peer) continue;
          jobs.push({ system: e.name as SystemName, workload, mode, run, timeoutMs: timeoutOf(workload, params) });
        }
      }
    }
  }

  const collected: Record<string, Record<string, number[]>> = {};
  const notes: BenchReport['notes'] = [];
  const failures: RunFailure[] = [];
  const quietMs: number[] = [];
  const quietSkipsNoted = new Set<string>();
  for (const [i, job] of jobs.entries()) {
    const what = `${job.system} ${job.workload}${job.mode ? ` ${job.mode}` : ''} run ${job.run}`;
    const quiet = await quietMachine();
    quietMs.push(quiet.ms);
    if (quiet.skipped !== null && !quietSkipsNoted.has(quiet.skipped)) {
      quietSkipsNoted.add(quiet.skipped);
      notes.push({ system: 'harness', note: `the quiet step before each job skipped a part: ${quiet.skipped}` });
    }
    const t0 = Date.now();
    const outcome = await runIsolated(
      {
        role: 'run',
        system: job.system,
        workload: job.workload,
        mode: job.mode,
        runId: `${stamp}_${i}`,
        params,
      },
      job.timeoutMs,
    );
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (outcome.status === 'ok' && outcome.result !== undefined) {
      const figures = (outcome.result.figures ?? {}) as Record<string, number>;
      for (const [id, value] of Object.entries(figures)) {
        collected[job.system] ??= {};
        const bySystem = collected[job.system] as Record<string, number[]>;
        bySystem[id] ??= [];
        bySystem[id].push(value);
      }
      for (const note of (outcome.result.notes ?? []) as string[]) notes.push({ system: job.system, note });
      const shown = Object.entries(figures)
        .map(([id, v]) => `${id}=${Number.isFinite(v) ? Math.round(v * 100) / 100 : v}`)
        .join(' ');
      log(`[${i + 1}/${jobs.length}] ${what}: ${shown} (${secs} s)`);
    } else {
      failures.push({
        system: job.system,
        workload: job.workload,
        mode: job.mode,
        run: job.run,
        status: outcome.status,
        error: outcome.error ?? '',
      });
      log(`[${i + 1}/${jobs.length}] ${what}: ${outcome.status}: ${outcome.error ?? ''} (${secs} s)`);
      await cleanUp(job.system, outcome);
    }
  }

  if (quietMs.length > 0) {
    const q = spread(quietMs);
    notes.push({
      system: 'harness',
      note: `before each job, CHECKPOINT and sync(1) wrote out what earlier jobs left: median ${Math.round(q?.median ?? 0)} ms, at most ${Math.round(q?.max ?? 0)} ms`,
    });
  }
  const finished = new Date();
  const report: BenchReport = {
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - started.getTime()) / 1000,
    mode: quick ? 'quick' : 'full',
    runs,
    params,
    machine,
    loadAverageEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
    systems: entries,
    figures: [...FIGURES, ...memoryFigures(params.memoryLevels)],
    results: summarise(collected),
    notes,
    failures,
    targets: [],
  };
  report.targets = checkTargets(report);

  if (command.partial && command.out === undefined) {
    // A partial run must not replace the full run the README shows.
    process.stdout.write(`${renderTable(report)}\n`);
    const partialDir = path.join(outDir, 'partial');
    fs.mkdirSync(partialDir, { recursive: true });
    fs.writeFileSync(path.join(partialDir, `${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
    log(
      `partial run: wrote ${path.relative(process.cwd(), partialDir)}/${stamp}.json (latest.* unchanged; --out DIR writes them elsewhere)`,
    );
    return;
  }
  await writeReport(report, outDir, stamp);
}

/** Creates `dir` if needed; a UsageError when it is not a folder this process can write to. */
function assertWritableFolder(dir: string): void {
  try {
    // Fails (EEXIST, ENOTDIR) where a file stands in the way.
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`cannot write results to ${dir} (${code}); pass --out with a folder you can write to`);
  }
}

/** Prints the table and writes latest.{json,txt,svg,png} (and `<stamp>.json` for a new run) to `outDir`. */
async function writeReport(report: BenchReport, outDir: string, stamp: string | null): Promise<void> {
  process.stdout.write(`${renderTable(report)}\n`);
  fs.mkdirSync(outDir, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  fs.writeFileSync(path.join(outDir, 'latest.json'), json);
  if (stamp !== null) fs.writeFileSync(path.join(outDir, `${stamp}.json`), json);
  fs.writeFileSync(path.join(outDir, 'latest.txt'), `${renderTable(report)}\n`);
  const svg = renderSvg(report);
  fs.writeFileSync(path.join(outDir, 'latest.svg'), svg);
  const png = await renderPng(svg);
  if ('png' in png) fs.writeFileSync(path.join(outDir, 'latest.png'), png.png);
  else log(`PNG not written (${png.error}); the SVG is in ${outDir}`);
  log(
    `wrote ${path.relative(process.cwd(), outDir)}/latest.{json,txt,svg${'png' in png ? ',png' : ''}}${stamp === null ? '' : ` and ${stamp}.json`}`,
  );
}

/** A run that did not finish may have left its queue behind: remove it from a fresh child. */
async function cleanUp(system: SystemName, outcome: ChildOutcome): Promise<void> {
  if (outcome.status === 'ok') return;
  for (const m of outcome.messages) {
    if (m.type !== 'target') continue;
    await runIsolated({ role: 'destroy', system, target: m.target as Target }, 60_000);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    log(`sluice bench: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  // Not the caller's mistake: say what failed; the stack only when asked for.
  const message = error instanceof Error ? error.message : String(error);
  const stack =
    process.env.BENCH_DEBUG && error instanceof Error ? `\n${error.stack ?? ''}` : ' (BENCH_DEBUG=1 prints the stack)';
  log(`bench failed: ${message}${stack}`);
  process.exit(1);
});
