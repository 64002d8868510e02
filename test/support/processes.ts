import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const CHILD = path.resolve(import.meta.dirname, 'child.ts');

export interface Child {
  process: ChildProcess;
  /** Resolves with the first stdout line whose event matches. */
  next(event: string): Promise<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
}

/** Starts test/support/child.ts with a command; stderr is passed through for diagnosis. */
export function startChild(command: object): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(command)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    const i = waiters.findIndex((w) => w.event === line.event);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(line);
    else lines.push(line);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    process: child,
    exited,
    next(event: string) {
      const i = lines.findIndex((l) => l.event === event);
      if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0] as Record<string, unknown>);
      return new Promise((resolve, reject) => {
        waiters.push({ event, resolve });
        void exited.then((code) => reject(new Error(`child exited (${code}) before "${event}"`)));
      });
    },
  };
}
