/**
 * Calls made within one event-loop turn, run as one batch (the PostgreSQL
 * engine's hot path at 1,000 nodes: one round trip, and one run of each
 * statement trigger, for a turn's completions instead of one per report).
 *
 * A batch starts once the turn's I/O callbacks have run (setImmediate), so
 * every report that arrived in the turn is in it. One batch runs at a time:
 * calls that come while one runs wait and go in the next, as a group commit
 * does, so batches grow with the load instead of piling up connections (and
 * a replica's own batches of one kind never wait on each other's locks; a
 * batch of picks runs a few statements at once, postgres-pick-batches.ts).
 *
 * DataLoader (the usual batcher) was not used: it runs its batches
 * concurrently (its schedule can be made a turn, its concurrency not), and
 * it has no way to run a batch that failed on one caller's value again call
 * by call.
 */
export type BatchRun<I, O> = (items: readonly I[]) => Promise<readonly (O | Error)[]>;

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export class TurnBatches<I, O> {
  private waiting: Waiting<I, O>[] = [];
  private scheduled = false;
  private running = false;

  /**
   * `run` answers each item in order: its result, or an Error that item's
   * caller gets. At most `max` items a batch. A batch that throws an error
   * `alone` accepts (one of the items' own: a value the database refuses) is
   * run again an item at a time, so one caller's bad input fails only that
   * caller; any other throw (the database away) fails every caller.
   */
  constructor(
    private readonly run: BatchRun<I, O>,
    private readonly opts: { max?: number; alone?: (err: unknown) => boolean } = {},
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.next();
    });
  }

  private async next(): Promise<void> {
    if (this.running) return;
    const batch = this.waiting.splice(0, this.opts.max ?? 256);
    if (batch.length === 0) return;
    this.running = true;
    try {
      await this.settle(batch);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  /** Runs `batch` and answers its callers; never throws. */
  private async settle(batch: Waiting<I, O>[]): Promise<void> {
    let out: readonly (O | Error)[];
    try {
      out = await this.run(batch.map((w) => w.item));
      if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} answered ${out.length}`);
    } catch (err) {
      if (batch.length > 1 && this.opts.alone?.(err)) await this.oneByOne(batch);
      else for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      const o = out[i] as O | Error;
      if (o instanceof Error) w.reject(o);
      else w.resolve(o);
    });
  }

  /** Each call alone, in order; one that fails for another reason than its own fails the rest with it (no point asking again). */
  private async oneByOne(batch: Waiting<I, O>[]): Promise<void> {
    for (const [i, w] of batch.entries()) {
      try {
        const [o] = await this.run([w.item]);
        if (o instanceof Error) w.reject(o);
        else w.resolve(o as O);
      } catch (err) {
        w.reject(err);
        if (this.opts.alone?.(err)) continue;
        for (const rest of batch.slice(i + 1)) rest.reject(err);
        return;
      }
    }
  }
}
