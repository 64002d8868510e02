/**
 * Model-based test: random sequences of send / receive / ack (current or
 * stale token) / nack / lease expiry / restart run against the real store and
 * a small reference model; after every step the store must agree with the
 * model. fast-check prints the seed and the shrunk counterexample on failure.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sluice } from '../../src/client/sluice.js';
import { LeaseLostError } from '../../src/errors.js';
import { createTestStore, STORE_KINDS, type TestStore } from '../support/stores.js';

const MAX_ATTEMPTS = 3;

interface ModelMessage {
  state: 'ready' | 'in_flight' | 'dead';
  attempts: number;
  /** Every token this message was ever leased with; the last is current while in flight. */
  tokens: string[];
}

interface Model {
  messages: Map<string, ModelMessage>;
  sent: number;
  completed: number;
}

interface Real {
  store: TestStore;
  sluice: Sluice;
}

type Cmd = fc.AsyncCommand<Model, Real>;

async function assertAgrees(model: Model, real: Real): Promise<void> {
  const stats = await real.sluice.queue('m').stats();
  const count = (state: ModelMessage['state']) => [...model.messages.values()].filter((m) => m.state === state).length;
  expect({ ready: stats.ready, inFlight: stats.inFlight, dead: stats.dead, completed: stats.completed }).toEqual({
    ready: count('ready'),
    inFlight: count('in_flight'),
    dead: count('dead'),
    completed: model.completed,
  });
}

class Send implements Cmd {
  constructor(readonly n: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const results = await real.sluice.sendMany(
      'm',
      Array.from({ length: this.n }, (_, i) => ({ payload: { i: model.sent + i } })),
    );
    model.sent += this.n;
    for (const r of results) model.messages.set(r.id, { state: 'ready', attempts: 0, tokens: [] });
    await assertAgrees(model, real);
  }
  toString = () => `send(${this.n})`;
}

class Receive implements Cmd {
  constructor(readonly max: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const ready = [...model.messages.entries()].filter(([, m]) => m.state === 'ready').map(([id]) => id);
    const got = await real.sluice.receive('m', { max: this.max, leaseMs: 60_000 });
    expect(got.length).toBe(Math.min(this.max, ready.length));
    for (const m of got) {
      const mm = model.messages.get(m.id);
      expect(mm?.state).toBe('ready');
      if (mm === undefined) continue;
      mm.state = 'in_flight';
      mm.attempts += 1;
      mm.tokens.push(m.leaseToken);
      expect(m.attempt).toBe(mm.attempts);
    }
    await assertAgrees(model, real);
  }
  toString = () => `receive(${this.max})`;
}

/** Picks an in-flight (or any leased-before) message by index among candidates. */
function pick(model: Model, index: number, filter: (m: ModelMessage) => boolean): [string, ModelMessage] | undefined {
  const list = [...model.messages.entries()].filter(([, m]) => filter(m));
  return list.length === 0 ? undefined : list[index % list.length];
}

class Settle implements Cmd {
  constructor(
    readonly index: number,
    readonly how: 'ack' | 'nack' | 'dead',
  ) {}
  check = (model: Model) => pick(model, this.index, (m) => m.state === 'in_flight') !== undefined;
  async run(model: Model, real: Real) {
    const [id, m] = pick(model, this.index, (x) => x.state === 'in_flight') as [string, ModelMessage];
    const token = m.tokens.at(-1) as string;
    if (this.how === 'ack') {
      await real.sluice.ack(id, token);
      model.messages.delete(id);
      model.completed += 1;
    } else if (this.how === 'nack') {
      await real.sluice.nack(id, token, { delayMs: 0, error: 'model nack' });
      m.state = m.attempts >= MAX_ATTEMPTS ? 'dead' : 'ready';
    } else {
      await real.sluice.deadLetter(id, token);
      m.state = 'dead';
    }
    await assertAgrees(model, real);
  }
  toString = () => `${this.how}(#${this.index})`;
}

class StaleAck implements Cmd {
  constructor(readonly index: number) {}
  check = (model: Model) =>
    pick(model, this.index, (m) => m.tokens.length > 1 || m.state !== 'in_flight') !== undefined;
  async run(model: Model, real: Real) {
    const picked = pick(model, this.index, (m) => m.tokens.length > 1 || m.state !== 'in_flight');
    const [id, m] = picked as [string, ModelMessage];
    // Any token that is not the current lease's: an earlier one, or a made-up one.
    const stale = m.state === 'in_flight' ? (m.tokens[0] as string) : (m.tokens[0] ?? 'AAAAAAAAAAAAAAAA');
    await expect(real.sluice.ack(id, stale)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(real.sluice.nack(id, stale)).rejects.toBeInstanceOf(LeaseLostError);
    await assertAgrees(model, real);
  }
  toString = () => `staleAck(#${this.index})`;
}

class Expire implements Cmd {
  constructor(readonly index: number) {}
  check = (model: Model) => pick(model, this.index, (m) => m.state === 'in_flight') !== undefined;
  async run(model: Model, real: Real) {
    const [id, m] = pick(model, this.index, (x) => x.state === 'in_flight') as [string, ModelMessage];
    await real.store.sql('UPDATE {schema}sluice_messages SET lease_expires_at = {past} WHERE id = {id}', id);
    await real.sluice.store.leaseRescue({ limit: 1_000 });
    m.state = m.attempts >= MAX_ATTEMPTS ? 'dead' : 'ready';
    await assertAgrees(model, real);
  }
  toString = () => `expire(#${this.index})`;
}

class Restart implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    await real.sluice.close();
    real.sluice = await real.store.open({ maintenance: false });
    await assertAgrees(model, real);
  }
  toString = () => 'restart';
}

class Redrive implements Cmd {
  check = (model: Model) => [...model.messages.values()].some((m) => m.state === 'dead');
  async run(model: Model, real: Real) {
    const dead = [...model.messages.values()].filter((m) => m.state === 'dead');
    expect(await real.sluice.queue('m').redrive({ all: true })).toBe(dead.length);
    for (const m of dead) {
      m.state = 'ready';
      m.attempts = 0;
    }
    await assertAgrees(model, real);
  }
  toString = () => 'redrive(all)';
}

// Weighted so runs often take one message through several attempts (where
// max-attempts and fencing bugs live) rather than mostly sending.
const commands = [
  fc.integer({ min: 1, max: 3 }).map((n) => new Send(n)),
  fc.integer({ min: 1, max: 4 }).map((n) => new Receive(n)),
  fc.integer({ min: 1, max: 4 }).map((n) => new Receive(n)),
  fc.integer({ min: 1, max: 4 }).map((n) => new Receive(n)),
  fc.nat().map((i) => new Settle(i, 'ack')),
  fc.nat().map((i) => new Settle(i, 'nack')),
  fc.nat().map((i) => new Settle(i, 'nack')),
  fc.nat().map((i) => new Settle(i, 'dead')),
  fc.nat().map((i) => new StaleAck(i)),
  fc.nat().map((i) => new Expire(i)),
  fc.nat().map((i) => new Expire(i)),
  fc.constant(new Restart()),
  fc.constant(new Redrive()),
];

describe.each(STORE_KINDS)('model-based check of the delivery contract (%s)', (kind) => {
  let stores: TestStore[] = [];
  beforeEach(() => {
    stores = [];
  });
  afterEach(async () => {
    await Promise.all(stores.map((s) => s.cleanup()));
  });

  it('agrees with the reference model on every step', async () => {
    const seed = Number(process.env.SLUICE_TEST_SEED ?? 20261123);
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 60, size: 'max' }), async (cmds) => {
        const store = await createTestStore(kind);
        stores.push(store);
        const sluice = await store.open({ maintenance: false });
        await sluice.queue('m').configure({ maxAttempts: MAX_ATTEMPTS });
        const real: Real = { store, sluice };
        await fc.asyncModelRun(() => ({ model: { messages: new Map(), sent: 0, completed: 0 }, real }), cmds);
        await real.sluice.close();
      }),
      { numRuns: kind === 'sqlite' ? 60 : 30, seed, verbose: 1 },
    );
  }, 180_000);
});
