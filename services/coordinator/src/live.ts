/**
 * In-process fan-out of live changes (sweep counts, job progress, previews,
 * nodes) to SSE clients and WatchSweep streams. Nothing here is durable.
 * close() ends every subscriber's stream, so a shutdown never waits on one.
 */
import { EventEmitter } from 'node:events';

export type LiveEvent =
  | { type: 'sweep'; sweepId: string }
  | { type: 'job'; sweepId: string; jobId: string; state: string }
  | { type: 'progress'; sweepId: string; jobId: string; step: number; total: number; preview?: string }
  | { type: 'node'; nodeId: string; status: string };

export class Live {
  private readonly emitter = new EventEmitter();
  private closedFlag = false;
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  get closed(): boolean {
    return this.closedFlag;
  }
  emit(e: LiveEvent): void {
    this.emitter.emit('event', e);
  }
  subscribe(fn: (e: LiveEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
  /** Calls `fn` once when the service shuts down (at once if it already has). */
  onClose(fn: () => void): () => void {
    if (this.closedFlag) {
      fn();
      return () => {};
    }
    this.emitter.once('close', fn);
    return () => this.emitter.off('close', fn);
  }
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.emitter.emit('close');
  }
}
