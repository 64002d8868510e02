import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { WakeSource } from '../../store/store.js';

/**
 * Wake-ups for workers sharing one SQLite file.
 *
 * In this process a commit wakes waiting workers through an EventEmitter. For
 * other processes, after the commit a byte is written to `<db>-wake/<queue>`,
 * and every process watches that folder with `fs.watch` (inotify): the event
 * arrives after the commit is visible, about 1 ms later. Watching the WAL file
 * instead fires before the commit is visible, so it is not used. Where the file
 * system has no change notification (network file systems), workers still find
 * messages through their poll interval.
 */
export class SqliteWake implements WakeSource {
  private readonly local = new EventEmitter();
  private readonly dir: string | null;
  private readonly fds = new Map<string, number>();
  private watcher: fs.FSWatcher | null = null;
  private readonly byte = Buffer.from('1');

  constructor(dbPath: string | null) {
    this.local.setMaxListeners(0);
    this.dir = dbPath === null ? null : `${dbPath}-wake`;
    if (this.dir !== null) fs.mkdirSync(this.dir, { recursive: true });
  }

  subscribe(queue: string, onWake: () => void): () => void {
    this.startWatching();
    this.local.on(queue, onWake);
    return () => {
      this.local.off(queue, onWake);
    };
  }

  /** Called after a commit that made messages of these queues claimable. */
  signal(queues: Iterable<string>): void {
    for (const queue of queues) {
      this.local.emit(queue);
      this.touch(queue);
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    this.local.removeAllListeners();
  }

  private touch(queue: string): void {
    if (this.dir === null) return;
    try {
      let fd = this.fds.get(queue);
      if (fd === undefined) {
        fd = fs.openSync(path.join(this.dir, queue), 'w');
        this.fds.set(queue, fd);
      }
      // A one-byte write at offset 0 raises IN_MODIFY without growing the file.
      fs.writeSync(fd, this.byte, 0, 1, 0);
    } catch {
      // A missed cross-process wake-up only delays a worker until its next poll.
    }
  }

  private startWatching(): void {
    if (this.watcher !== null || this.dir === null) return;
    try {
      this.watcher = fs.watch(this.dir, { persistent: false }, (_event, filename) => {
        if (filename) this.local.emit(filename.toString());
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = null;
      });
    } catch {
      this.watcher = null;
    }
  }
}
