/**
 * A child process for multi-process tests. Started as
 *   node --import tsx test/support/child.ts '<json command>'
 * it prints one JSON line per event on stdout ("ready", results) and exits
 * when its job is done or on SIGTERM (after closing its worker cleanly).
 *
 * Modes:
 * - send-keys: sends `keys` to `queue` with each key as idempotency key; prints the ids.
 * - work: consumes `queue`; each handled message writes a ledger row (see
 *   ledger.ts) before the handler resolves, and another when it is acked or
 *   its lease is found lost.
 * - claim-count: receives with `max` repeatedly for `ms` and prints claim times.
 */
import fs from 'node:fs';
import type { StoreLocation } from '../../src/client/open-options.js';
import { Sluice } from '../../src/client/sluice.js';
import { openLedger } from './ledger.js';
import { mulberry32 } from './random.js';

interface Command {
  mode: 'send-keys' | 'work' | 'claim-times';
  location: StoreLocation;
  queue: string;
  keys?: string[];
  concurrency?: number;
  leaseMs?: number;
  ledger?: string;
  handlerMs?: number;
  /** Probability that a handler throws after writing its ledger line. */
  failRate?: number;
  seed?: number;
  sweepIntervalMs?: number;
  durationMs?: number;
  max?: number;
  /** claim-times: start claiming at this time (epoch ms), so several children overlap. */
  startAt?: number;
  /**
   * claim-times: instead of startAt, wait (after "ready") for this file to appear and start at
   * the time it holds: the parent writes it once every child has booted, however slowly.
   */
  startFile?: string;
}

const command = JSON.parse(process.argv[2] as string) as Command;
const out = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const sluice = await Sluice.open(command.location, { logger: silent, sweepIntervalMs: command.sweepIntervalMs ?? 200 });

if (command.mode === 'send-keys') {
  out({ event: 'ready' });
  const results = await Promise.all(
    (command.keys ?? []).map(async (key) => {
      const r = await sluice.send(command.queue, { key, pid: process.pid }, { idempotencyKey: key });
      return [key, r.id, r.duplicate] as const;
    }),
  );
  out({ event: 'sent', results });
  await sluice.close();
  process.exit(0);
}

if (command.mode === 'claim-times') {
  out({ event: 'ready' });
  let startAt = command.startAt;
  if (command.startFile !== undefined) {
    while (!fs.existsSync(command.startFile)) await new Promise((r) => setTimeout(r, 5));
    startAt = Number(fs.readFileSync(command.startFile, 'utf8'));
  }
  if (startAt !== undefined) await new Promise((r) => setTimeout(r, Math.max(0, (startAt as number) - Date.now())));
  const times: number[] = [];
  // A shared deadline: a child that booted late must not stretch the period.
  const until = (startAt ?? Date.now()) + (command.durationMs ?? 1_000);
  while (Date.now() < until) {
    const got = await sluice.receive(command.queue, { max: command.max ?? 10, waitMs: 50, leaseMs: 60_000 });
    for (const m of got) {
      times.push(Date.now());
      await sluice.ack(m.id, m.leaseToken);
    }
  }
  out({ event: 'claimed', times });
  await sluice.close();
  process.exit(0);
}

if (command.mode === 'work') {
  const random = mulberry32(command.seed ?? 1);
  const write = openLedger(command.ledger as string);
  type Msg = { id: string; attempt: number; orderingKey: string | null; payload: { seq?: number } };
  const line = (m: Msg, outcome: 'ack' | 'lost' | null, fail: boolean) =>
    write({
      outcome,
      id: m.id,
      attempt: m.attempt,
      key: m.orderingKey,
      seq: m.payload.seq ?? -1,
      pid: process.pid,
      fail,
    });
  const worker = sluice.work<{ seq?: number }>(
    command.queue,
    async (m) => {
      if (command.handlerMs) await new Promise((r) => setTimeout(r, command.handlerMs));
      const fail = random() < (command.failRate ?? 0);
      line(m, null, fail);
      if (fail) throw new Error('injected failure');
    },
    { concurrency: command.concurrency ?? 8, leaseMs: command.leaseMs ?? 2_000 },
  );
  worker.on('completed', (m: Msg) => line(m, 'ack', false));
  worker.on('failed', (m: Msg, _error: unknown, result: { ok: boolean; reason?: string }) => {
    if (!result.ok && result.reason === 'lease_lost') line(m, 'lost', false);
  });
  process.on('SIGTERM', () => {
    void worker.close().then(async () => {
      await sluice.close();
      process.exit(0);
    });
  });
  out({ event: 'ready' });
}
