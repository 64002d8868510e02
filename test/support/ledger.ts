/**
 * The effects ledger of multi-process tests: a SQLite file every worker child
 * writes to. Its AUTOINCREMENT row number is a total order of events across
 * processes that agrees with real time (writers are serialised by SQLite's
 * lock), which timestamps from different processes cannot promise.
 */
import Database from 'better-sqlite3';

/**
 * One event: a handled delivery (written by the handler before it resolves,
 * `outcome` null), or what became of a delivery: acked, or its lease was lost
 * before the ack.
 */
export interface LedgerLine {
  /** Position in the global order of events. */
  at: number;
  outcome: 'ack' | 'lost' | null;
  id: string;
  attempt: number;
  key: string | null;
  seq: number;
  pid: number;
  fail: boolean;
}

/** Opens (creating) a ledger for writing. */
export function openLedger(file: string): (line: Omit<LedgerLine, 'at'>) => void {
  const db = new Database(file, { timeout: 10_000 });
  db.pragma('journal_mode = WAL');
  // Survives a SIGKILL of the writer (the OS keeps the write); power loss is not under test.
  db.pragma('synchronous = OFF');
  db.exec(`CREATE TABLE IF NOT EXISTS ledger (at INTEGER PRIMARY KEY AUTOINCREMENT, outcome TEXT, id TEXT NOT NULL,
    attempt INTEGER NOT NULL, key TEXT, seq INTEGER, pid INTEGER NOT NULL, fail INTEGER NOT NULL)`);
  const insert = db.prepare(
    'INSERT INTO ledger (outcome, id, attempt, key, seq, pid, fail) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  return (l) => {
    insert.run(l.outcome, l.id, l.attempt, l.key, l.seq ?? null, l.pid, l.fail ? 1 : 0);
  };
}

/** Reads a ledger in event order. */
export function readLedger(file: string): LedgerLine[] {
  const db = new Database(file, { readonly: true, timeout: 10_000 });
  try {
    const rows = db
      .prepare('SELECT at, outcome, id, attempt, key, seq, pid, fail FROM ledger ORDER BY at')
      .all() as (Omit<LedgerLine, 'fail'> & { fail: number })[];
    return rows.map((r) => ({ ...r, fail: r.fail === 1 }));
  } finally {
    db.close();
  }
}

/** What the checker found. */
export interface LedgerVerdict {
  /** Sent but never handled successfully. */
  lost: string[];
  /** Handled successfully more than once with no lost lease to explain it. */
  unexplainedDuplicates: string[];
  explainedDuplicates: number;
  /** Handled but never sent. */
  unexpected: string[];
}

/**
 * The reliability checker: every sent id must be handled successfully at least
 * once; a second success is only acceptable when the earlier one's lease was
 * lost: its process was killed (the ack may never have committed), or the
 * ack was rejected because the lease had expired.
 */
export function checkLedger(sent: Iterable<string>, lines: LedgerLine[], killedPids: Set<number>): LedgerVerdict {
  const lostLeases = new Set(lines.filter((l) => l.outcome === 'lost').map(deliveryKey));
  const successes = new Map<string, LedgerLine[]>();
  for (const l of lines) {
    if (l.fail || l.outcome !== null) continue;
    const list = successes.get(l.id);
    if (list === undefined) successes.set(l.id, [l]);
    else list.push(l);
  }
  const sentSet = new Set(sent);
  const missing = [...sentSet].filter((id) => !successes.has(id));
  const unexpected = [...successes.keys()].filter((id) => !sentSet.has(id));
  const unexplainedDuplicates: string[] = [];
  let explainedDuplicates = 0;
  for (const [id, list] of successes) {
    if (list.length < 2) continue;
    // Every success but the last must have lost its lease.
    if (list.slice(0, -1).every((l) => killedPids.has(l.pid) || lostLeases.has(deliveryKey(l)))) {
      explainedDuplicates += 1;
    } else {
      unexplainedDuplicates.push(id);
    }
  }
  return { lost: missing, unexplainedDuplicates, explainedDuplicates, unexpected };
}

/**
 * Per ordering key, the sequence numbers of completed messages in the order
 * their completing handlers ran. The completing delivery of a message is its
 * last successful handling whose lease was not found lost (an ack line may be
 * missing when the process was killed right after acking, so acks alone
 * cannot say). Per-key ordering holds when each list is strictly increasing.
 */
export function completionOrderByKey(lines: LedgerLine[]): Map<string, number[]> {
  const lostLeases = new Set(lines.filter((l) => l.outcome === 'lost').map(deliveryKey));
  const completing = new Map<string, LedgerLine>();
  for (const l of lines) {
    if (l.outcome !== null || l.fail || l.key === null || lostLeases.has(deliveryKey(l))) continue;
    completing.set(l.id, l); // later lines replace earlier ones
  }
  const byKey = new Map<string, number[]>();
  for (const l of [...completing.values()].sort((a, b) => a.at - b.at)) {
    const key = l.key as string;
    const list = byKey.get(key);
    if (list === undefined) byKey.set(key, [l.seq]);
    else list.push(l.seq);
  }
  return byKey;
}

function deliveryKey(l: LedgerLine): string {
  return `${l.id}/${l.attempt}/${l.pid}`;
}
