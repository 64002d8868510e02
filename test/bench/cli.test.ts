/**
 * The benchmark's command line: what each option means, that a mistake is one
 * clear line and exit code 2 (never a stack trace), and that --render turns a
 * saved report into the table, JSON, SVG and PNG.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBenchArgs, UsageError } from '../../bench/lib/cli.js';
import { SYSTEM_NAMES } from '../../bench/systems/system-registry.js';
import { WORKLOAD_IDS } from '../../bench/workloads/workload.js';
import { report } from '../support/bench-report.js';

const RUN = path.resolve(import.meta.dirname, '../../bench/run.ts');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-cli-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function usageError(args: string[]): string {
  try {
    parseBenchArgs(args);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`${args.join(' ')} was accepted`);
}

describe('bench arguments', () => {
  it('runs everything three times by default, once with --quick', () => {
    expect(parseBenchArgs([])).toEqual({
      kind: 'run',
      quick: false,
      runs: 3,
      systems: [...SYSTEM_NAMES],
      workloads: [...WORKLOAD_IDS],
      out: undefined,
      partial: false,
    });
    expect(parseBenchArgs(['--quick'])).toMatchObject({ runs: 1, quick: true, partial: true });
  });

  it('takes systems, workloads, runs and an output folder', () => {
    expect(
      parseBenchArgs(['--only', 'bullmq, sluice-sqlite,bullmq', '--workloads=W3', '--runs', '5', '--out', 'x']),
    ).toEqual({
      kind: 'run',
      quick: false,
      runs: 5,
      systems: ['bullmq', 'sluice-sqlite'],
      workloads: ['W3'],
      out: 'x',
      partial: true,
    });
  });

  it('renders a saved report with --render, optionally elsewhere', () => {
    expect(parseBenchArgs(['--render', 'r.json', '--out', 'o'])).toEqual({ kind: 'render', file: 'r.json', out: 'o' });
    expect(parseBenchArgs(['--help'])).toEqual({ kind: 'help' });
  });

  it('says what was wrong with each kind of mistake', () => {
    expect(usageError(['--only', 'rabbitmq'])).toBe(
      `unknown system "rabbitmq" in --only; choose from ${SYSTEM_NAMES.join(', ')}`,
    );
    expect(usageError(['--workloads', 'W9,W1'])).toContain('unknown workload "W9" in --workloads');
    expect(usageError(['--workloads', ','])).toContain('--workloads needs at least one workload');
    expect(usageError(['--runs', '0'])).toBe('--runs must be a whole number from 1 to 20, not "0"');
    expect(usageError(['--runs', '2.5'])).toContain('--runs must be a whole number');
    expect(usageError(['--runs', '99'])).toContain('from 1 to 20');
    expect(usageError(['--runs'])).toContain("'--runs <value>' argument missing");
    expect(usageError(['--fast'])).toBe('unknown option --fast; the options are listed below');
    expect(usageError(['W1'])).toBe('unexpected argument "W1"; options start with --');
    expect(usageError(['--render', 'r.json', '--quick', '--runs', '2'])).toBe(
      '--render writes a saved report again and runs nothing; drop --runs, --quick',
    );
  });
});

describe('bench command line', () => {
  it('exits 2 with one line and the usage for a mistake, without a stack trace or any run', () => {
    for (const args of [
      ['--only', 'nosuch'],
      ['--bogus'],
      ['--runs', 'x'],
      ['--render', path.join(scratch, 'none.json')],
    ]) {
      const r = bench(...args);
      expect(r.code, args.join(' ')).toBe(2);
      const first = r.stderr.split('\n')[0] as string;
      expect(first).toMatch(/^sluice bench: /);
      expect(r.stderr).toContain('usage: npm run bench -- [options]');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).not.toContain('measuring the machine');
    }
  });

  it('refuses, before measuring anything, an --out that is not a folder it can write to', () => {
    const file = path.join(scratch, 'a-file');
    fs.writeFileSync(file, '');
    const r = bench('--workloads', 'W1', '--out', path.join(file, 'results'));
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      `sluice bench: cannot write results to ${path.join(file, 'results')} (ENOTDIR); pass --out with a folder you can write to`,
    );
    expect(r.stderr).not.toContain('measuring the machine');
    const saved = path.join(scratch, 'saved-for-out.json');
    fs.writeFileSync(saved, JSON.stringify(report({})));
    const render = bench('--render', saved, '--out', file);
    expect(render.code).toBe(2);
    expect(render.stderr).toContain(`cannot write results to ${file} (EEXIST)`);
  });

  it('refuses a file that is not a saved report, naming what is missing', () => {
    const file = path.join(scratch, 'not-a-report.json');
    fs.writeFileSync(file, JSON.stringify({ name: 'sluice' }));
    const r = bench('--render', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} is not a benchmark report (missing startedAt, machine`);
    fs.writeFileSync(file, '{ not json');
    expect(bench('--render', file).stderr).toContain(`${file} is not JSON`);
  });

  it('prints its options with --help', () => {
    const r = bench('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--workloads W1,W3');
  });

  it('writes the table, JSON, SVG and PNG of a saved report with --render', () => {
    const saved = report({
      'sluice-sqlite': { 'w1.c64': [90_000, 80_000, 100_000], 'w3.p99': [2, 2.5, 3] },
      bullmq: { 'w1.c64': [30_000, 25_000, 35_000], 'w3.p99': [4, 4, 5] },
    });
    const file = path.join(scratch, 'saved.json');
    fs.writeFileSync(file, JSON.stringify(saved));
    const out = path.join(scratch, 'out');
    const r = bench('--render', file, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('W1 send, 64 in flight');
    expect(fs.readFileSync(path.join(out, 'latest.txt'), 'utf8')).toBe(r.stdout);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'))).toEqual(saved);
    const svg = fs.readFileSync(path.join(out, 'latest.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    for (const label of ['Sluice/SQLite', 'BullMQ', 'W1 send throughput', 'W3 send → handler start']) {
      expect(svg).toContain(label);
    }
    const png = fs.readFileSync(path.join(out, 'latest.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // 1,600 px wide, as the SVG says (the IHDR chunk's width, big-endian at byte 16).
    expect(png.readUInt32BE(16)).toBe(1600);
    // A re-render names no new stamped file: only latest.*.
    expect(fs.readdirSync(out).sort()).toEqual(['latest.json', 'latest.png', 'latest.svg', 'latest.txt']);
  });
});
