/**
 * The one boundary between Sluice and a database. Everything above it (client,
 * worker, maintenance, server) is shared; each driver below it holds its own SQL.
 *
 * Rules every driver keeps:
 * - Each method is one transaction, or joins the caller's when given `tx`
 *   (only where `capabilities.externalTransactions`).
 * - Expected outcomes (lease lost, duplicate, queue full) are results, never
 *   thrown; the client turns them into errors in one place.
 * - Times are milliseconds since the epoch, read from the driver's clock
 *   (the injected Clock on SQLite, the database's clock on PostgreSQL).
 * - Payloads and headers cross the boundary as JSON text, encoded and decoded
 *   by the client, so drivers never re-encode user data.
 */

import type { HeaderFilter } from '../core/header-filter.js';
import type { DeadReason, MessageState } from '../core/message-state.js';
import type { QueueConfig, QueueConfigInput } from '../core/queue-config.js';

/** What a driver can do beyond the common contract. Code reads these, never a driver's name. */
export interface StoreCapabilities {
  /** Sends and completions can join a transaction the caller opened on the same database. */
  externalTransactions: boolean;
  /** Several machines may share the store (not just processes on one machine). */
  multiHost: boolean;
  /**
   * Operations wait on a network round trip (false or absent: they complete
   * within the call, as SQLite's do). Workers then start their next claim
   * early when fast handlers would otherwise wait for it.
   */
  roundTrips?: boolean;
}

/** A message to insert; the client has already validated and encoded it. */
export interface NewMessage {
  queue: string;
  /** JSON text. */
  payload: string;
  /** JSON text of a string map, or null for none. */
  headers: string | null;
  priority: number;
  /** Relative delay, measured on the store's clock. */
  delayMs: number;
  /** Absolute run-at (ms since epoch); wins over delayMs when set. */
  runAt: number | null;
  /** Null means the queue's setting at delivery time. */
  maxAttempts: number | null;
  /** JSON text of a BackoffPolicy, or null for the queue's. */
  backoff: string | null;
  orderingKey: string | null;
  idempotencyKey: string | null;
  /** Null makes the message's own id its correlation id. */
  correlationId: string | null;
  causationId: string | null;
}

/** Copies of one message for every subscription of a topic whose filter matches. */
export interface PublishUnit {
  kind: 'publish';
  topic: string;
  message: Omit<NewMessage, 'queue'>;
}

/** Messages inserted all together or not at all. */
export interface SendUnit {
  kind: 'send';
  messages: NewMessage[];
}

export type InsertUnit = SendUnit | PublishUnit;

export interface InsertedMessage {
  id: string;
  queue: string;
  /** True when the idempotency key was already used within the dedup window: nothing new was stored. */
  duplicate: boolean;
}

export type InsertUnitResult =
  | { ok: true; messages: InsertedMessage[] }
  | { ok: false; full: { queue: string; maxDepth: number; retryAfterMs: number } };

export interface MessageInsertParams {
  units: InsertUnit[];
  /** A caller's open transaction to join (externalTransactions only). */
  tx?: unknown;
}

/** A message as claimed, with its lease. */
export interface ClaimedRow {
  id: string;
  queue: string;
  payload: string;
  headers: string | null;
  attempt: number;
  maxAttempts: number;
  priority: number;
  orderingKey: string | null;
  idempotencyKey: string | null;
  correlationId: string;
  causationId: string | null;
  enqueuedAt: number;
  leaseToken: string;
  leaseExpiresAt: number;
}

export interface MessageClaimParams {
  queue: string;
  max: number;
  leaseMs: number;
}

export interface MessageClaimResult {
  messages: ClaimedRow[];
  /**
   * When nothing more can be claimed now: the earliest time something might be
   * (next delayed run-at, or the end of a rate-limit window), or null if only a
   * new send or a settle could make something claimable.
   */
  retryAt: number | null;
  paused: boolean;
}

/** How a leased message ends this attempt. */
export type FinishOutcome =
  | { kind: 'ack' }
  | { kind: 'retry'; error: string; delayMs?: number }
  | { kind: 'dead'; error: string; reason: DeadReason };

export interface FinishItem {
  id: string;
  leaseToken: string;
  outcome: FinishOutcome;
}

export type FinishResult =
  | { ok: true; state: 'deleted' | 'completed' | 'ready' | 'delayed' | 'dead' }
  | { ok: false; reason: 'lease_lost' };

export interface MessageFinishParams {
  items: FinishItem[];
  tx?: unknown;
}

export interface LeaseRef {
  id: string;
  leaseToken: string;
}

export interface MessageLeaseExtendParams {
  items: LeaseRef[];
  leaseMs: number;
}

/** New expiry (ms since epoch) per item, or null where the lease is lost. */
export type LeaseExtendResult = (number | null)[];

export interface LeaseRescueResult {
  requeued: number;
  deadLettered: number;
  /** Queues that gained claimable messages. */
  queues: string[];
}

/** A stored message in any state. */
export interface MessageRow {
  id: string;
  queue: string;
  state: MessageState;
  payload: string;
  headers: string | null;
  attempts: number;
  maxAttempts: number;
  priority: number;
  runAt: number;
  orderingKey: string | null;
  idempotencyKey: string | null;
  correlationId: string;
  causationId: string | null;
  enqueuedAt: number;
  /** JSON text of `{ attempt, error, at }[]`. */
  errors: string | null;
  deadReason: DeadReason | null;
  finishedAt: number | null;
  leaseExpiresAt: number | null;
}

/** Which dead letters an operation applies to; fields combine with AND; `{}` is every one. */
export interface DeadLetterFilter {
  ids?: string[];
  reason?: DeadReason;
  /** Substring of the last error. */
  errorContains?: string;
  /** Dead-lettered at or after / before these times (ms since epoch). */
  deadAfter?: number;
  deadBefore?: number;
}

export interface DeadLetterListParams {
  queue: string;
  limit: number;
  /** Return dead letters with ids greater than this (pagination). */
  afterId?: string;
  filter?: DeadLetterFilter;
}

export interface QueueInfo {
  name: string;
  config: QueueConfig;
  paused: boolean;
  createdAt: number;
}

export interface QueueCounters {
  enqueued: number;
  completed: number;
  retried: number;
  deadLettered: number;
}

export interface QueueStatsRow extends QueueCounters {
  ready: number;
  delayed: number;
  waiting: number;
  inFlight: number;
  dead: number;
  /** Completed messages still retained. */
  completedRetained: number;
  /** Time since the oldest ready message became ready, 0 when none. */
  oldestReadyAgeMs: number;
  paused: boolean;
}

export interface Subscription {
  topic: string;
  queue: string;
  filter: HeaderFilter;
}

export interface RetentionSweepResult {
  completedDeleted: number;
  keysExpired: number;
  effectsExpired: number;
}

/** Tells a worker that messages may have become claimable, in this process or another. */
export interface WakeSource {
  /** Calls `onWake` when `queue` may have claimable messages; returns an unsubscribe function. */
  subscribe(queue: string, onWake: () => void): () => void;
}

/** The driver contract. */
export interface Store {
  readonly capabilities: StoreCapabilities;
  readonly wake: WakeSource;

  /** Inserts each unit atomically; units are independent of each other. */
  messageInsertMany(params: MessageInsertParams): Promise<InsertUnitResult[]>;
  /** Leases up to `max` claimable messages of a queue: priority, then run-at, then id. */
  messageClaim(params: MessageClaimParams): Promise<MessageClaimResult>;
  /** Settles leased messages; each item succeeds or reports its lease lost, independently. */
  messageFinishMany(params: MessageFinishParams): Promise<FinishResult[]>;
  messageLeaseExtend(params: MessageLeaseExtendParams): Promise<LeaseExtendResult>;
  /** Returns leased messages to ready at once and gives their attempt back (shutdown). */
  messageRelease(params: { items: LeaseRef[] }): Promise<boolean[]>;
  messageGet(params: { id: string }): Promise<MessageRow | null>;

  /** Requeues or dead-letters messages whose lease ran out. */
  leaseRescue(params: { limit: number }): Promise<LeaseRescueResult>;

  deadLetterList(params: DeadLetterListParams): Promise<MessageRow[]>;
  /** Puts matching dead letters back with attempts reset; returns how many. */
  deadLetterRedrive(params: { queue: string; filter: DeadLetterFilter }): Promise<number>;
  /** Deletes matching dead letters; returns how many. */
  deadLetterPurge(params: { queue: string; filter: DeadLetterFilter }): Promise<number>;

  queueGet(params: { queue: string }): Promise<QueueInfo | null>;
  queueList(): Promise<QueueInfo[]>;
  /** Creates the queue if needed and applies the changes; returns the whole configuration. */
  queueConfigure(params: { queue: string; config: QueueConfigInput }): Promise<QueueConfig>;
  queuePause(params: { queue: string; paused: boolean }): Promise<void>;
  queueStats(params: { queue: string }): Promise<QueueStatsRow>;

  subscriptionPut(params: Subscription): Promise<void>;
  subscriptionDelete(params: { topic: string; queue: string }): Promise<boolean>;
  subscriptionList(params: { topic?: string }): Promise<Subscription[]>;

  /** The recorded result of a `ctx.once` effect, if one was recorded and has not expired. */
  effectGet(params: { queue: string; key: string; tx?: unknown }): Promise<{ result: string } | null>;
  effectPut(params: { queue: string; key: string; result: string; tx?: unknown }): Promise<void>;

  /** Deletes retained completions, idempotency keys and effects past their windows. */
  retentionSweep(params: { limit: number }): Promise<RetentionSweepResult>;

  /**
   * Runs `fn` in a transaction on the store's database and passes it the
   * transaction handle to give to `tx` parameters (externalTransactions only).
   */
  transaction<T>(fn: (tx: unknown) => Promise<T>): Promise<T>;

  close(): Promise<void>;
}
