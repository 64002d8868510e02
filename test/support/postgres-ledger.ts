/**
 * The ledger of the PostgreSQL multi-process tests, kept in two tables of the
 * test's own schema so it is dropped with it:
 * - `test_events`: one row per step of a delivery (`start`, `end`, `fail`,
 *   `ack`, `lost`); its bigserial `at` is a total order of the steps across
 *   processes (each row commits before the step that follows it can happen).
 * - `test_effects`: the handlers' side effect, with the message id as its
 *   unique key, written with ON CONFLICT DO NOTHING.
 */
import type pg from 'pg';

export type LedgerKind = 'start' | 'end' | 'fail' | 'ack' | 'lost';

export interface LedgerEvent {
  at: number;
  kind: LedgerKind;
  id: string;
  attempt: number;
  key: string | null;
  seq: number | null;
  pid: number;
}

/** Creates the ledger tables in `schema`. */
export async function createLedger(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query(`
    CREATE TABLE "${schema}".test_events (
      at bigserial PRIMARY KEY, kind text NOT NULL, id bigint NOT NULL, attempt int NOT NULL,
      key text, seq int, pid int NOT NULL, written timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE TABLE "${schema}".test_effects (id bigint PRIMARY KEY, attempt int NOT NULL, pid int NOT NULL);`);
}

/** A function that appends one event. */
export function ledgerWriter(pool: pg.Pool, schema: string): (e: Omit<LedgerEvent, 'at'>) => Promise<void> {
  const text = `INSERT INTO "${schema}".test_events (kind, id, attempt, key, seq, pid) VALUES ($1, $2, $3, $4, $5, $6)`;
  return async (e) => {
    await pool.query(text, [e.kind, e.id, e.attempt, e.key, e.seq, e.pid]);
  };
}

/** Every event, in order. */
export async function readLedger(client: pg.ClientBase, schema: string): Promise<LedgerEvent[]> {
  const { rows } = await client.query<{
    at: string;
    kind: LedgerKind;
    id: string;
    attempt: number;
    key: string | null;
    seq: number | null;
    pid: number;
  }>(`SELECT at, kind, id::text AS id, attempt, key, seq, pid FROM "${schema}".test_events ORDER BY at`);
  return rows.map((r) => ({ ...r, at: Number(r.at) }));
}

/** Ids with a recorded effect (each at most once, by the table's key). */
export async function readEffects(client: pg.ClientBase, schema: string): Promise<Set<string>> {
  const { rows } = await client.query<{ id: string }>(`SELECT id::text AS id FROM "${schema}".test_effects`);
  return new Set(rows.map((r) => r.id));
}

/** What the checker found. */
export interface LedgerVerdict {
  /** Sent but never handled to the end. */
  lost: string[];
  /** Handled to the end more than once although no earlier delivery lost its lease. */
  unexplainedDuplicates: string[];
  /** Handled but never sent. */
  unexpected: string[];
  /** Per ordering key, deliveries that ran while another of the key was running. */
  overlaps: string[];
  /** Per ordering key, ends out of send order. */
  orderViolations: string[];
}

/**
 * Checks a ledger against what was sent. `seqOf` gives each sent keyed id its
 * position within its key. A delivery counts as done when its `end` is
 * recorded; a second done delivery of an id is explained only when an earlier
 * one was reported `lost` (or `explained` says so, e.g. its process died).
 */
export function checkLedger(
  sent: Map<string, { key: string | null; seq: number | null }>,
  events: LedgerEvent[],
  explained: (e: LedgerEvent) => boolean = () => false,
): LedgerVerdict {
  const delivery = (e: LedgerEvent) => `${e.id}/${e.attempt}/${e.pid}`;
  const lostLeases = new Set(events.filter((e) => e.kind === 'lost').map(delivery));
  const ends = new Map<string, LedgerEvent[]>();
  for (const e of events) {
    if (e.kind !== 'end') continue;
    const list = ends.get(e.id);
    if (list === undefined) ends.set(e.id, [e]);
    else list.push(e);
  }
  const lost = [...sent.keys()].filter((id) => !ends.has(id));
  const unexpected = [...ends.keys()].filter((id) => !sent.has(id));
  const unexplainedDuplicates = [...ends.entries()]
    .filter(
      ([, list]) => list.length > 1 && !list.slice(0, -1).every((e) => lostLeases.has(delivery(e)) || explained(e)),
    )
    .map(([id]) => id);

  // Per key: a start must follow the end (or fail) of the key's previous start, unless that one
  // lost its lease; and successful ends must come in send order.
  const overlaps: string[] = [];
  const orderViolations: string[] = [];
  const running = new Map<string, string>();
  const lastSeq = new Map<string, number>();
  for (const e of events) {
    if (e.key === null) continue;
    const d = delivery(e);
    if (e.kind === 'start') {
      const other = running.get(e.key);
      if (other !== undefined && !lostLeases.has(other) && !explained(e)) overlaps.push(`${e.key}: ${other} and ${d}`);
      running.set(e.key, d);
    } else if (e.kind === 'end' || e.kind === 'fail') {
      if (running.get(e.key) === d) running.delete(e.key);
      // A repeat of the same seq is a redone delivery, judged by the duplicate check above.
      if (e.kind === 'end' && e.seq !== null) {
        const previous = lastSeq.get(e.key) ?? -1;
        if (e.seq < previous) orderViolations.push(`${e.key}: seq ${e.seq} after ${previous}`);
        lastSeq.set(e.key, Math.max(previous, e.seq));
      }
    }
  }
  return { lost, unexplainedDuplicates, unexpected, overlaps, orderViolations };
}
