/**
 * The life of a message. Stored as small integers; these names are what the
 * API, CLI and dashboard show.
 *
 *   send ──► ready ◄─────────────── delayed ◄── send with delay / retry with backoff
 *     │        │ claim (attempt+1,      ▲            (becomes ready when run-at passes)
 *     │        ▼  new lease token)      │
 *     │    in_flight ── nack/fail ──────┘ (attempts left)
 *     │        │  ├─── fail, no attempts left / UnrecoverableError / deadLetter ──► dead
 *     │        │  ├─── lease expired ──► ready (attempts left) or dead (none left)
 *     │        │  └─── release (shutdown) ──► ready, attempt given back
 *     │        └── ack ──► deleted, or completed while retained
 *     └─ ordering key busy ──► waiting ──(head of its key settled)──► ready / delayed
 *
 *   dead ── redrive ──► ready (attempts reset) or waiting (its key is busy)
 */
export const MessageStateCode = {
  ready: 0,
  delayed: 1,
  waiting: 2,
  inFlight: 3,
  dead: 4,
  completed: 5,
} as const;

/** A message's state as the API reports it. */
export type MessageState = 'ready' | 'delayed' | 'waiting' | 'in_flight' | 'dead' | 'completed';

const NAMES: readonly MessageState[] = ['ready', 'delayed', 'waiting', 'in_flight', 'dead', 'completed'];

/** The API name of a stored state code. */
export function messageStateName(code: number): MessageState {
  const name = NAMES[code];
  if (name === undefined) throw new Error(`unknown message state code ${code}`);
  return name;
}

/** Why a message ended in dead letters. */
export type DeadReason = 'max_attempts' | 'unrecoverable' | 'lease_expired' | 'rejected';
