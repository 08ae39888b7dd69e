/**
 * Bounds how long one turn of the event loop spends on the hub's work. At
 * 1,000 nodes a round of results arrives within milliseconds: every socket
 * is readable in the same turn, and recording all of them at once blocked the
 * loop for 100–250 ms (timers, heartbeats and HTTP answers waited behind it).
 * Work admitted here starts at once while the turn's budget lasts; past it,
 * it waits, in order, for a later turn, after timers and I/O have had theirs.
 * The total work is unchanged; only its spread over turns is.
 */
export class LoopSlices {
  /** When this turn's slice began (undefined: none begun since the last check phase). */
  private started: number | undefined;
  private readonly waiting: (() => void)[] = [];
  /** idle: nothing waits; stepping: pieces start one after another in this turn; deferred: the rest waits for a later turn. */
  private state: 'idle' | 'stepping' | 'deferred' = 'idle';
  /** The pieces now starting began in a drain, that is in a check phase: one immediate from there runs in the next turn. */
  private inDrain = false;

  constructor(
    private readonly budgetMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Runs `work` in this turn while its budget lasts, else in a later turn; always after the work admitted before it. */
  run<T>(work: () => Promise<T>): Promise<T> {
    const admitted = new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.state === 'idle') {
      this.state = 'stepping';
      queueMicrotask(this.step);
    }
    return admitted.then(work);
  }

  /** Work admitted and not yet started. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Starts the next waiting piece, or defers the rest once the budget is
   * spent. The following step is a microtask queued from process.nextTick,
   * so it runs only once the piece's own microtasks are all done (its
   * synchronous database work included): the clock then counts that work.
   * A piece that waits on I/O lets the next one start.
   */
  private readonly step = (): void => {
    if (!this.waiting.length) {
      this.state = 'idle';
      this.inDrain = false;
      return;
    }
    const now = this.clock();
    if (this.started === undefined) {
      this.started = now;
      setImmediate(() => (this.started = undefined));
    }
    if (now - this.started >= this.budgetMs) {
      this.state = 'deferred';
      // From a drain (a check phase) one immediate runs in the next turn; from anywhere else the first may still run in
      // this turn's check phase, so a second hop makes it the next, after timers and I/O.
      if (this.inDrain) setImmediate(this.drain);
      else setImmediate(() => setImmediate(this.drain));
      return;
    }
    this.waiting.shift()!();
    process.nextTick(() => queueMicrotask(this.step));
  };

  /** A later turn: a fresh budget for the work that waited. */
  private readonly drain = (): void => {
    this.started = undefined;
    this.state = 'stepping';
    this.inDrain = true;
    // As a microtask, like every later step: called here directly, the next step (a nextTick) would run before this piece's own microtasks.
    queueMicrotask(this.step);
  };
}
