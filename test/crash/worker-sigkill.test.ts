/**
 * Worker processes are SIGKILLed again and again in the middle of a run. What
 * must hold: nothing lost, nothing left in flight, every message handled once
 * except those whose handler finished in a process killed before its ack.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkLedger, readLedger } from '../support/ledger.js';
import { type Child, startChild } from '../support/processes.js';
import { freshStorePerTest, STORE_KINDS, waitFor } from '../support/stores.js';

describe.each(STORE_KINDS)('SIGKILL of worker processes (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('loses nothing and redoes only the killed workers’ unacked messages', async () => {
    const seed = Number(process.env.SLUICE_TEST_SEED ?? Date.now() % 100_000);
    console.log(`sigkill test seed ${seed} (replay with SLUICE_TEST_SEED=${seed})`);
    let rand = seed;
    const random = () => {
      rand = (rand * 48271) % 2147483647;
      return rand / 2147483647;
    };
    const s = await store.current.open();
    const total = 3_000;
    const sent: string[] = [];
    for (let i = 0; i < total; i += 500) {
      const batch = await s.sendMany(
        'jobs',
        Array.from({ length: 500 }, (_, j) => ({ payload: { seq: i + j } })),
      );
      sent.push(...batch.map((r) => r.id));
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kill-'));
    let n = 0;
    const spawnWorker = (): Child =>
      startChild({
        mode: 'work',
        location: store.current.location,
        queue: 'jobs',
        ledger: path.join(dir, 'ledger.db'),
        concurrency: 8,
        leaseMs: 800,
        sweepIntervalMs: 100,
        handlerMs: 2,
        seed: seed + n++,
      });
    const workers = [spawnWorker(), spawnWorker(), spawnWorker()];
    await Promise.all(workers.map((w) => w.next('ready')));
    const killed = new Set<number>();
    for (let k = 0; k < 8; k++) {
      await new Promise((r) => setTimeout(r, 100 + random() * 200));
      const victim = workers.splice(Math.floor(random() * workers.length), 1)[0] as Child;
      killed.add(victim.process.pid as number);
      victim.process.kill('SIGKILL');
      await victim.exited;
      const replacement = spawnWorker();
      await replacement.next('ready');
      workers.push(replacement);
    }
    await waitFor(async () => (await s.queue('jobs').stats()).completed === total, {
      timeoutMs: 60_000,
      what: 'all messages to complete',
    });
    for (const w of workers) w.process.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));

    const verdict = checkLedger(sent, readLedger(path.join(dir, 'ledger.db')), killed);
    expect(verdict.lost).toEqual([]);
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.unexplainedDuplicates).toEqual([]);
    const stats = await s.queue('jobs').stats();
    expect(stats).toMatchObject({ ready: 0, delayed: 0, inFlight: 0, dead: 0, completed: total });
    console.log(`killed ${killed.size} workers; ${verdict.explainedDuplicates} messages redone after a kill`);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});
