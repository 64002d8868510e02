/**
 * The benchmark harness end to end, on both Sluice stores for real: a --quick
 * run of W1, W3 and W4 writes a complete report and cleans up after itself, and a
 * run that overstays its limit is killed with every process it started. No
 * figure's size is asserted: speed is for `npm run bench` to report, not for
 * a test to judge.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchDataDir } from '../../bench/lib/data-dir.js';
import { runIsolated } from '../../bench/lib/processes.js';
import type { BenchReport } from '../../bench/lib/report.js';
import { POSTGRES_URL, type Target } from '../../bench/systems/queue-system.js';
import { FULL_PARAMS } from '../../bench/workloads/workload.js';

const RUN = path.resolve(import.meta.dirname, '../../bench/run.ts');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-smoke-'));
let admin: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function benchSchemas(): Promise<string[]> {
  const r = await admin.query<{ name: string }>(
    "SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE 'sluice\\_bench\\_%'",
  );
  return r.rows.map((row) => row.name).sort();
}

function benchDirs(): string[] {
  const dir = benchDataDir();
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Processes whose command line mentions `text` (the run id is in every child's and helper's arguments). */
function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

describe('bench --quick on both Sluice stores', () => {
  it('writes a full report of W1, W3 and W4 and leaves no queue behind', { timeout: 180_000 }, async () => {
    const schemasBefore = await benchSchemas();
    const dirsBefore = benchDirs();
    const out = path.join(scratch, 'quick');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        RUN,
        '--quick',
        '--only',
        'sluice-sqlite,sluice-postgres',
        '--workloads',
        'W1,W3,W4',
        '--out',
        out,
      ],
      { encoding: 'utf8', timeout: 170_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    // Progress for each of the 10 runs (3 W1 modes, W3 and W4, on each store), then the table.
    expect(r.stderr).toContain('[10/10] sluice-postgres W4 run 1:');
    expect(r.stdout).toContain('Targets (medians):');

    const saved = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as BenchReport;
    expect(saved.mode).toBe('quick');
    expect(saved.runs).toBe(1);
    expect(saved.failures).toEqual([]);
    expect(saved.systems.map((s) => [s.name, s.available])).toEqual([
      ['sluice-sqlite', true],
      ['sluice-postgres', true],
    ]);
    for (const system of ['sluice-sqlite', 'sluice-postgres']) {
      const figures = saved.results[system] ?? {};
      for (const id of ['w1.seq', 'w1.c64', 'w1.bulk', 'w3.p50', 'w3.p95', 'w3.p99', 'w3.max', 'w3.commitMax']) {
        const f = figures[id];
        expect(f, `${system} ${id}`).toBeDefined();
        expect(f?.runs).toBe(1);
        expect(f?.median).toBeGreaterThan(0);
        expect(Number.isFinite(f?.median)).toBe(true);
      }
      const p = (id: string) => figures[id]?.median as number;
      for (const id of ['w4.rate', 'w4.p99', 'w4.p99Slot', 'w4.drain']) {
        expect(Number.isFinite(p(id)), `${system} ${id}`).toBe(true);
      }
      // A send is issued at or after its slot falls due, so timed from the slot it is never faster.
      expect(p('w4.p99Slot')).toBeGreaterThanOrEqual(p('w4.p99'));
      expect(p('w3.p50')).toBeLessThanOrEqual(p('w3.p95'));
      expect(p('w3.p95')).toBeLessThanOrEqual(p('w3.p99'));
      expect(p('w3.p99')).toBeLessThanOrEqual(p('w3.max'));
    }
    // The SQLite store's sequential sends are set against the disk probed around them.
    const share = saved.results['sluice-sqlite']?.['w1.seqShare']?.median as number;
    const rate = saved.results['sluice-sqlite']?.['w1.seq']?.median as number;
    const disk = saved.results['sluice-sqlite']?.['w1.seqDisk']?.median as number;
    expect(share).toBeCloseTo((100 * rate) / disk, 6);
    // Each job started after the quiet step (CHECKPOINT and sync), and neither part was skipped.
    const harness = saved.notes.filter((n) => n.system === 'harness').map((n) => n.note);
    expect(harness.some((n) => n.startsWith('before each job, CHECKPOINT and sync(1)'))).toBe(true);
    expect(harness.filter((n) => n.includes('skipped'))).toEqual([]);
    // The machine it ran on is part of the report.
    expect(saved.machine.fsyncPerSec).toBeGreaterThan(0);
    expect(saved.machine.postgresCommitsPerSec).toBeGreaterThan(0);
    // Every target is listed; those needing peers or other workloads are "not measured", not passed.
    expect(saved.targets).toHaveLength(20);
    const pgW3 = saved.targets.find((t) => t.target.startsWith('W3 send→handler p99: Sluice/PostgreSQL'));
    expect(typeof pgW3?.met).toBe('boolean');
    const vsPeer = saved.targets.find((t) => t.target.startsWith('W1 send, 64 in flight: Sluice/SQLite'));
    expect(vsPeer).toMatchObject({ met: null, measured: 'not measured' });

    expect(fs.readFileSync(path.join(out, 'latest.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(fs.readFileSync(path.join(out, 'latest.txt'), 'utf8')).toBe(r.stdout);
    // Each run made its own queue (a folder, a schema) and removed it.
    expect(await benchSchemas()).toEqual(schemasBefore);
    expect(benchDirs()).toEqual(dirsBefore);
    const probeTables = await admin.query(
      "SELECT 1 FROM pg_tables WHERE tablename LIKE 'sluice\\_bench\\_commit\\_probe%'",
    );
    expect(probeTables.rowCount).toBe(0);
  });
});

describe('a run that overstays its limit', () => {
  it('is killed with its helper process, recorded as timed out, and leaves nothing once its queue is removed', {
    timeout: 60_000,
  }, async () => {
    const dirsBefore = benchDirs();
    const runId = `overstay_${process.pid}_${Date.now()}`;
    // W3 at full size sends for ten seconds after its set-up, with its worker in a helper process
    // and a commit probe writing beside it; allow six.
    const running = runIsolated(
      { role: 'run', system: 'sluice-sqlite', workload: 'W3', mode: '', runId, params: FULL_PARAMS },
      6_000,
    );
    // Five seconds in, the run and its worker are both up.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(processesMentioning(runId).length).toBeGreaterThanOrEqual(2);
    const outcome = await running;
    expect(outcome.status).toBe('timed out');
    expect(outcome.error).toBe('killed after 6000 ms');
    // Nothing that mentions the run is left a moment later (its process group is killed).
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(processesMentioning(runId)).toEqual([]);
    // What it wrote is all in the queue it had created, named in the messages it sent before it was killed:
    // the SQLite files and the commit probe's scratch file.
    const created = outcome.messages.find((m) => m.type === 'target');
    expect(created).toBeDefined();
    const target = created?.target as Target;
    const inside = fs.readdirSync(target.dir as string);
    expect(inside).toContain('sluice.db');
    expect(inside.some((f) => f.startsWith('commit-probe-'))).toBe(true);
    const cleaned = await runIsolated({ role: 'destroy', system: 'sluice-sqlite', target }, 30_000);
    expect(cleaned.status).toBe('ok');
    expect(fs.existsSync(target.dir as string)).toBe(false);
    expect(benchDirs()).toEqual(dirsBefore);
  });
});
