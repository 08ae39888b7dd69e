/**
 * Runs work one at a time per key (a node id), in the order it was queued;
 * different keys run concurrently. The node hub keeps each node's messages,
 * fills and mark-downs in one line so awaiting the store never lets two of
 * them interleave (a fill counting held jobs while a reconnect releases them).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Queues `work` behind everything queued for `key`; settles as `work` does. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
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
