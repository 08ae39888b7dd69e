/**
 * In-process fan-out of live changes (sweep counts, job progress, previews,
 * nodes) to SSE clients and WatchSweep streams. Nothing here is durable.
 */
import { EventEmitter } from 'node:events';

export type LiveEvent =
  | { type: 'sweep'; sweepId: string }
  | { type: 'job'; sweepId: string; jobId: string; state: string }
  | { type: 'progress'; sweepId: string; jobId: string; step: number; total: number; preview?: string }
  | { type: 'node'; nodeId: string; status: string };

export class Live {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  emit(e: LiveEvent): void {
    this.emitter.emit('event', e);
  }
  subscribe(fn: (e: LiveEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}
