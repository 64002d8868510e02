import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Sluice } from '../../src/client/sluice.js';
import { ValidationError } from '../../src/errors.js';
import { freshStorePerTest, STORE_KINDS } from '../support/stores.js';

/** Sends `n` messages and dead-letters each with its own error. */
async function makeDead(s: Sluice, queue: string, n: number, error = (i: number) => `failure ${i}`): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await s.send(queue, { i }, { correlationId: `c-${i}` })).id);
  const got = await s.receive(queue, { max: n });
  for (const m of got) await s.deadLetter(m.id, m.leaseToken, { error: error((m.payload as { i: number }).i) });
  return ids;
}

describe.each(STORE_KINDS)('dead letters (%s)', (kind) => {
  const store = freshStorePerTest(kind, { beforeEach, afterEach });

  it('lists dead letters oldest first, with reason and errors, and pages by id', async () => {
    const s = await store.current.open();
    const ids = await makeDead(s, 'q', 5);
    const q = s.queue('q');
    const page1 = await q.deadLetters({ limit: 2 });
    const page2 = await q.deadLetters({ limit: 2, afterId: page1[1]?.id });
    const page3 = await q.deadLetters({ limit: 2, afterId: page2[1]?.id });
    expect([...page1, ...page2, ...page3].map((d) => d.id)).toEqual(ids);
    expect(page1[0]).toMatchObject({ state: 'dead', deadReason: 'rejected', correlationId: 'c-0', payload: { i: 0 } });
    expect(page1[0]?.errors[0]?.error).toBe('failure 0');
    expect(page1[0]?.finishedAt).toBeInstanceOf(Date);
    expect((await q.stats()).dead).toBe(5);
    expect((await q.stats()).deadLettered).toBe(5);
  });

  it('redrives one by id with attempts reset, keeping id and correlation id', async () => {
    const s = await store.current.open();
    const ids = await makeDead(s, 'q', 3);
    const q = s.queue('q');
    expect(await q.redrive({ ids: [ids[1] as string] })).toBe(1);
    const [m] = await s.receive('q');
    expect(m).toMatchObject({ id: ids[1], attempt: 1, correlationId: 'c-1' });
    expect((await q.stats()).dead).toBe(2);
  });

  it('redrives by filter on the error text and on the reason', async () => {
    const s = await store.current.open();
    await makeDead(s, 'q', 6, (i) => (i % 2 === 0 ? 'smtp 451 try later' : 'malformed address'));
    const q = s.queue('q');
    expect(await q.redrive({ filter: { errorContains: 'smtp 451' } })).toBe(3);
    expect(await q.redrive({ filter: { reason: 'max_attempts' } })).toBe(0);
    const back = await s.receive('q', { max: 10 });
    expect(back.map((m) => (m.payload as { i: number }).i).sort()).toEqual([0, 2, 4]);
    expect((await q.deadLetters()).map((d) => d.errors.at(-1)?.error)).toEqual([
      'malformed address',
      'malformed address',
      'malformed address',
    ]);
  });

  it('redrives all and purges', async () => {
    const s = await store.current.open();
    await makeDead(s, 'q', 4);
    await makeDead(s, 'other', 2);
    const q = s.queue('q');
    expect(await q.redrive({ all: true })).toBe(4);
    const again = await s.receive('q', { max: 10 });
    for (const m of again) await s.deadLetter(m.id, m.leaseToken);
    expect(await q.purgeDead({ ids: [again[0]?.id as string] })).toBe(1);
    expect(await q.purgeDead()).toBe(3);
    expect((await q.stats()).dead).toBe(0);
    // Another queue's dead letters are untouched.
    expect((await s.queue('other').stats()).dead).toBe(2);
  });

  it('redrive and purge need an explicit selection', async () => {
    const s = await store.current.open();
    const q = s.queue('q');
    await expect(q.redrive({} as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(q.redrive({ ids: ['abc'] })).rejects.toBeInstanceOf(ValidationError);
    await expect(q.redrive({ filter: { colour: 'red' } as never })).rejects.toBeInstanceOf(ValidationError);
    await expect(q.deadLetters({ limit: 0 })).rejects.toBeInstanceOf(ValidationError);
  });

  it('a message dead-lettered by lease expiry records why', async () => {
    const s = await store.current.open({ sweepIntervalMs: 20 });
    await s.queue('q').configure({ maxAttempts: 1 });
    const { id } = await s.send('q', 'worker died');
    await s.receive('q', { leaseMs: 50 });
    const deadline = Date.now() + 5_000;
    while ((await s.queue('q').stats()).dead === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const [dead] = await s.queue('q').deadLetters();
    expect(dead).toMatchObject({ id, deadReason: 'lease_expired' });
    expect(dead?.errors[0]?.error).toMatch(/lease expired/);
  });
});
