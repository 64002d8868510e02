/**
 * Wake-ups for workers sharing one PostgreSQL schema, over LISTEN/NOTIFY.
 *
 * Each store keeps one dedicated connection (opened on first use) that
 * listens on the schema's channel and also sends this process's
 * notifications, with `synchronous_commit = off`: a notification carries no
 * data worth an fsync. The payload is the queue name.
 *
 * NOTIFY takes a database-wide lock at commit, so sending one per insert
 * would serialise heavy send load on it. Signals are coalesced instead: the
 * first after a quiet spell is sent at once (an idle worker elsewhere wakes
 * within milliseconds), and the ones arriving within the next
 * NOTIFY_INTERVAL_MS are gathered into one statement for all their queues.
 * Workers in this process are woken directly, without the round trip.
 *
 * When the connection drops it is reopened with backoff, and every subscribed
 * queue is woken once it is back, since notifications sent meanwhile are lost.
 * Workers also poll (`pollIntervalMs`), so a lost notification only delays a
 * message, never strands it.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { WakeSource } from '../../store/store.js';

/**
 * Shortest gap between two NOTIFY statements from one process. At most one
 * is in flight at a time as well, so under heavy load they gather on their
 * own. Kept short: a message sent within this gap of the previous wake-up
 * waits for the timer, which Node rounds up to a millisecond; at 5 ms,
 * sends arriving every few milliseconds waited about 1.5 ms at the median.
 */
const NOTIFY_INTERVAL_MS = 1;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/** Sends one notification per queue on a channel. Params: $1 channel, $2 queues. */
export const NOTIFY_SQL = 'SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q';

export class PostgresWake implements WakeSource {
  private readonly local = new EventEmitter();
  private readonly subscribed = new Map<string, number>();
  private client: pg.Client | null = null;
  private ready = false;
  private pid: number | null = null;
  private connecting = false;
  private reconnectDelay = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly pending = new Set<string>();
  private notifyTimer: NodeJS.Timeout | null = null;
  private notifying = false;
  private lastNotify = Number.NEGATIVE_INFINITY;

  /**
   * @param newClient makes an unconnected client for the listening connection.
   * @param channel the schema's channel name (`<schema>.wake`).
   */
  constructor(
    private readonly newClient: () => pg.Client,
    readonly channel: string,
  ) {
    this.local.setMaxListeners(0);
  }

  subscribe(queue: string, onWake: () => void): () => void {
    this.local.on(queue, onWake);
    this.subscribed.set(queue, (this.subscribed.get(queue) ?? 0) + 1);
    this.connect();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.local.off(queue, onWake);
      const left = (this.subscribed.get(queue) ?? 1) - 1;
      if (left > 0) this.subscribed.set(queue, left);
      else this.subscribed.delete(queue);
    };
  }

  /** Called after a commit that may have made messages of these queues claimable. */
  signal(queues: Iterable<string>): void {
    if (this.closed) return;
    for (const queue of queues) {
      this.local.emit(queue);
      this.pending.add(queue);
    }
    this.scheduleNotify();
  }

  /** Sends the notifications still gathered (a producer that closes right after sending), then disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.notifyTimer !== null) clearTimeout(this.notifyTimer);
    this.reconnectTimer = null;
    this.notifyTimer = null;
    this.local.removeAllListeners();
    const client = this.client;
    const ready = this.ready;
    this.client = null;
    this.ready = false;
    if (client === null) return;
    if (ready && this.pending.size > 0) {
      await client.query(NOTIFY_SQL, [this.channel, [...this.pending]]).catch(() => undefined);
    }
    this.pending.clear();
    await client.end().catch(() => undefined);
  }

  private connect(): void {
    if (this.closed || this.client !== null || this.connecting || this.reconnectTimer !== null) return;
    this.connecting = true;
    const client = this.newClient();
    const lost = () => this.lost(client);
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      // Our own notifications were already delivered to this process's workers.
      if (n.processId === this.pid || n.payload === undefined) return;
      this.local.emit(n.payload);
    });
    this.client = client;
    void (async () => {
      try {
        await client.connect();
        // Purpose: this session's NOTIFY commits do not wait for a WAL flush (they carry no data).
        await client.query('SET synchronous_commit = off');
        // Purpose: receive the schema's wake-ups. The channel is a quoted identifier (schema names are checked).
        await client.query(`LISTEN "${this.channel}"`);
        // Purpose: this session's backend pid, to recognise our own notifications. Result: pid.
        const result = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        this.pid = result.rows[0]?.pid ?? null;
        if (this.client !== client) return;
        this.ready = true;
        this.connecting = false;
        const wasDown = this.reconnectDelay > 0;
        this.reconnectDelay = 0;
        // Notifications sent while we were away are lost: look at every queue once.
        if (wasDown) for (const queue of this.subscribed.keys()) this.local.emit(queue);
        this.scheduleNotify();
      } catch {
        lost();
      }
    })();
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.ready = false;
    this.connecting = false;
    this.pid = null;
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.reconnectDelay = Math.min(Math.max(RECONNECT_MIN_MS, this.reconnectDelay * 2), RECONNECT_MAX_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      // Only come back for someone: a subscriber, or notifications to send.
      if (this.subscribed.size > 0 || this.pending.size > 0) this.connect();
      else this.reconnectDelay = 0;
    }, this.reconnectDelay);
    this.reconnectTimer.unref();
  }

  private scheduleNotify(): void {
    if (this.closed || this.pending.size === 0 || this.notifying || this.notifyTimer !== null) return;
    if (!this.ready) {
      // Sent once the connection is up; while it is down workers rely on polling.
      this.connect();
      return;
    }
    const wait = this.lastNotify + NOTIFY_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.sendNotify();
      return;
    }
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = null;
      this.sendNotify();
    }, wait);
    this.notifyTimer.unref();
  }

  private sendNotify(): void {
    const client = this.client;
    if (client === null || !this.ready || this.pending.size === 0) return;
    const queues = [...this.pending];
    this.pending.clear();
    this.notifying = true;
    this.lastNotify = performance.now();
    client
      .query(NOTIFY_SQL, [this.channel, queues])
      .catch(() => undefined)
      .finally(() => {
        this.notifying = false;
        this.scheduleNotify();
      });
  }
}
