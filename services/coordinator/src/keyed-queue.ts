import type { LoopSlices } from './loop-slices.js';

/**
 * Runs work one at a time per key (a node id), in the order it was queued;
 * different keys run concurrently. The node hub keeps each node's messages,
 * fills and mark-downs in one line so awaiting the store never lets two of
 * them interleave (a fill counting held jobs while a reconnect releases them).
 * With `slices`, each piece of work starts when the event loop's turn has
 * budget left (loop-slices.ts).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  constructor(private readonly slices?: Pick<LoopSlices, 'run'>) {}

  /** Queues `work` behind everything queued for `key`; settles as `work` does. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(() => (this.slices ? this.slices.run(work) : work()));
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.tails.size;
  }

  /** Settles once everything queued now has run. */
  async idle(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}
