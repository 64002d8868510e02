import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Entry point of every benchmark child process. */
const CHILD_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'child.ts');
/**
 * tsx to run TypeScript; --expose-gc so memory figures are taken after a full
 * collection; with BENCH_CPU_PROF=dir, a CPU profile of every child in dir.
 */
const EXEC_ARGV = [
  '--import',
  'tsx',
  '--expose-gc',
  ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
];

/** A message between a benchmark process and its parent, over the IPC channel. */
export interface Envelope {
  type: string;
  [key: string]: unknown;
}

export interface ChildOutcome {
  status: 'ok' | 'failed' | 'timed out';
  result?: Record<string, unknown>;
  error?: string;
  /** Every message the child sent, in order (e.g. the target it created, so it can be cleaned up). */
  messages: Envelope[];
}

/**
 * Runs one benchmark run in a fresh process group and waits for its `result`
 * message. After `timeoutMs` the whole group (the run and any helper process it
 * started) is killed and the run is recorded as timed out.
 */
export function runIsolated(spec: Record<string, unknown>, timeoutMs: number): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const child = fork(CHILD_ENTRY, [JSON.stringify(spec)], {
      execArgv: EXEC_ARGV,
      detached: true,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    const messages: Envelope[] = [];
    let stderr = '';
    let settled = false;
    const finish = (outcome: Omit<ChildOutcome, 'messages'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome.status !== 'ok' || child.exitCode !== null || child.signalCode !== null) {
        killGroup(child);
        resolve({ ...outcome, messages });
        return;
      }
      // A finished run exits by itself (writing its CPU profile, if asked); kill whatever is left after a moment.
      const grace = setTimeout(() => {
        killGroup(child);
        resolve({ ...outcome, messages });
      }, 3_000);
      child.once('exit', () => {
        clearTimeout(grace);
        killGroup(child);
        resolve({ ...outcome, messages });
      });
    };
    const timer = setTimeout(() => finish({ status: 'timed out', error: `killed after ${timeoutMs} ms` }), timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    child.on('message', (raw) => {
      const message = raw as Envelope;
      messages.push(message);
      if (message.type === 'result') finish({ status: 'ok', result: message.result as Record<string, unknown> });
      if (message.type === 'error') finish({ status: 'failed', error: String(message.error) });
    });
    child.on('exit', (code, signal) => {
      // Give a final IPC message a moment to arrive before calling it a crash.
      setTimeout(
        () =>
          finish({
            status: 'failed',
            error: `exited (${signal ?? code}) without a result${stderr ? `: ${lastLines(stderr)}` : ''}`,
          }),
        50,
      );
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-6).join(' | ');
}

/**
 * A helper process started by a run: a worker in another process than the
 * sender. It shares the run's process group, so a timed-out run takes it along.
 */
export class Helper {
  private readonly child: ChildProcess;
  private readonly inbox: Envelope[] = [];
  private readonly waiters: { type: string; resolve: (m: Envelope) => void; reject: (e: Error) => void }[] = [];
  private exited: Error | null = null;
  private stderr = '';

  constructor(spec: Record<string, unknown>) {
    this.child = fork(CHILD_ENTRY, [JSON.stringify(spec)], {
      execArgv: EXEC_ARGV,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4_000);
    });
    this.child.on('message', (raw) => {
      const message = raw as Envelope;
      if (message.type === 'error') {
        this.fail(new Error(`helper failed: ${String(message.error)}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.type === message.type);
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(message);
      else this.inbox.push(message);
    });
    this.child.on('exit', (code, signal) => {
      this.fail(new Error(`helper exited (${signal ?? code})${this.stderr ? `: ${lastLines(this.stderr)}` : ''}`));
    });
  }

  private fail(error: Error): void {
    this.exited ??= error;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  /** Waits for the next message of this type. */
  next(type: string): Promise<Envelope> {
    const i = this.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Envelope);
    if (this.exited !== null) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.waiters.push({ type, resolve, reject }));
  }

  send(message: Envelope): void {
    this.child.send(message);
  }

  /** Asks the helper to stop and waits for it to exit (killing it after `graceMs`). */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      this.child.send({ type: 'stop' });
    } catch {
      // Channel already closed.
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** In a child: sends a message to the parent. */
export function tell(message: Envelope): void {
  process.send?.(message);
}

/** In a child: resolves on the parent's next message of this type. */
export function hear(type: string): Promise<Envelope> {
  return new Promise((resolve) => {
    const listener = (raw: unknown) => {
      const message = raw as Envelope;
      if (message.type !== type) return;
      process.off('message', listener);
      resolve(message);
    };
    process.on('message', listener);
  });
}
