/**
 * SQLite migrations, numbered and append-only: a landed migration is never
 * edited; a change is a new entry. `PRAGMA user_version` records how many have
 * been applied, and they run inside BEGIN IMMEDIATE so processes opening the
 * same file at once apply each exactly once.
 *
 * Message states are the integers of MessageStateCode: 0 ready, 1 delayed,
 * 2 waiting (its ordering key is busy), 3 in flight, 4 dead, 5 completed (retained).
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  // 1: the whole first schema.
  `
  CREATE TABLE sluice_queues (
    name              TEXT PRIMARY KEY,
    config            TEXT NOT NULL DEFAULT '{}',  -- JSON of the options set by configure; defaults fill the rest
    paused            INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    depth             INTEGER NOT NULL DEFAULT 0,  -- messages not yet done: ready, delayed, waiting, in flight
    enqueued          INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    retried           INTEGER NOT NULL DEFAULT 0,
    dead_lettered     INTEGER NOT NULL DEFAULT 0,
    rate_window_start INTEGER NOT NULL DEFAULT 0,
    rate_window_count INTEGER NOT NULL DEFAULT 0
  );

  -- AUTOINCREMENT so an id is never reused after the newest message is deleted:
  -- ids are handed to callers, idempotency keys and logs, and must stay unique.
  CREATE TABLE sluice_messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT NOT NULL,
    state            INTEGER NOT NULL,
    priority         INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    headers          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER,
    backoff          TEXT,
    ordering_key     TEXT,
    idempotency_key  TEXT,
    correlation_id   TEXT,
    causation_id     TEXT,
    enqueued_at      INTEGER NOT NULL,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    errors           TEXT,
    dead_reason      TEXT,
    finished_at      INTEGER
  );

  -- Claim order: priority, then run-at, then id; only ready rows are indexed.
  CREATE INDEX sluice_messages_ready ON sluice_messages (queue, priority DESC, run_at, id) WHERE state = 0;
  CREATE INDEX sluice_messages_delayed ON sluice_messages (queue, run_at) WHERE state = 1;
  CREATE INDEX sluice_messages_in_flight ON sluice_messages (queue, lease_expires_at) WHERE state = 3;
  -- Live messages per ordering key, in send order: "is the key busy" and "who is next".
  CREATE INDEX sluice_messages_key ON sluice_messages (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state < 4;
  CREATE INDEX sluice_messages_dead ON sluice_messages (queue, id) WHERE state = 4;
  CREATE INDEX sluice_messages_completed ON sluice_messages (queue, finished_at) WHERE state = 5;

  CREATE TABLE sluice_idempotency_keys (
    queue      TEXT NOT NULL,
    key        TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
  ) WITHOUT ROWID;
  CREATE INDEX sluice_idempotency_keys_expiry ON sluice_idempotency_keys (expires_at);

  CREATE TABLE sluice_subscriptions (
    topic      TEXT NOT NULL,
    queue      TEXT NOT NULL,
    filter     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, queue)
  ) WITHOUT ROWID;

  CREATE TABLE sluice_effects (
    queue      TEXT NOT NULL,
    key        TEXT NOT NULL,
    result     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
  ) WITHOUT ROWID;
  CREATE INDEX sluice_effects_expiry ON sluice_effects (expires_at);
  `,
];
