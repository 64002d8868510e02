import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkLedger, readLedger } from '../support/ledger.js';
import { startChild } from '../support/processes.js';
import { freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('two worker processes sharing one store (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('split the work, handle every message exactly once, and wake on new sends', async () => {
    const s = await store.current.open();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-two-'));
    const workers = [0, 1].map(() =>
      startChild({
        mode: 'work',
        location: store.current.location,
        queue: 'q',
        ledger: path.join(dir, 'ledger.db'),
        concurrency: 4,
        handlerMs: 1,
      }),
    );
    await Promise.all(workers.map((w) => w.next('ready')));
    // Sent after both are idle, so they must be woken across processes.
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const batch = await s.sendMany(
        'q',
        Array.from({ length: 100 }, (_, j) => ({ payload: { seq: i * 100 + j } })),
      );
      sent.push(...batch.map((r) => r.id));
    }
    await waitFor(async () => (await s.queue('q').stats()).completed === sent.length, { timeoutMs: 30_000 });
    for (const w of workers) w.process.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    const lines = readLedger(path.join(dir, 'ledger.db'));
    const verdict = checkLedger(sent, lines, new Set());
    expect(verdict).toMatchObject({ lost: [], unexpected: [], unexplainedDuplicates: [] });
    const pids = new Set(lines.map((l) => l.pid));
    expect(pids.size).toBe(2);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});
