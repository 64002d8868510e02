import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const CHILD = path.resolve(import.meta.dirname, 'postgres-child.ts');

export interface WorkerProcess {
  pid: number;
  /** SIGTERM, then wait for a clean exit. */
  stop(): Promise<void>;
  kill(): void;
  exited: Promise<number | null>;
}

/** Starts a postgres-child.ts worker process; resolves once it consumes. */
export async function startPostgresWorker(command: object): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(command)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (text) => {
      if (text.includes('"ready"')) resolve();
    });
    void exited.then((code) => reject(new Error(`worker process exited (${code}) before it was ready`)));
  });
  return {
    pid: child.pid as number,
    kill: () => child.kill('SIGKILL'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
    exited,
  };
}
