/**
 * Filling every node (a tick, a new sweep, a requeue) in chunks: the first
 * `chunk` nodes at once, in the caller's transaction, each further chunk in
 * a later turn of the event loop in a transaction of its own. A farm of a
 * thousand nodes filled in one go held the event loop for a whole fill
 * (hundreds of ms at a sweep's start: bench/scale.ts's loop lag), and every
 * node's result waited behind it. A farm no bigger than one chunk is filled
 * exactly as before, at once.
 *
 * A fill asked for while a pass is under way is not started beside it: the
 * pass goes on, and one more pass follows it (nodes already passed over may
 * have work now).
 */
export interface FarmFillDeps<T> {
  /** Every node to fill now, in order. */
  targets(): T[];
  /** Fills these nodes, in one transaction; nodes that left since `targets()` are the callee's to skip. */
  fill(chunk: T[]): void;
  /** A later chunk failed (the database, say): the pass is dropped, the next tick's pass is the retry. */
  failed(err: unknown): void;
  /** A pass filled every node. */
  passed(): void;
  /** True once the hub stops: no further chunk runs. */
  stopped(): boolean;
}

export class FarmFill<T> {
  private pass: T[] | undefined;
  private at = 0;
  private again = false;

  constructor(
    private readonly deps: FarmFillDeps<T>,
    private readonly chunk = 50,
  ) {}

  /** Fills every node: the first chunk now (its errors are the caller's), the rest in later turns. */
  request(): void {
    if (this.pass) {
      this.again = true;
      return;
    }
    this.pass = this.deps.targets();
    this.at = 0;
    this.step();
  }

  private step(): void {
    const pass = this.pass!;
    const chunk = pass.slice(this.at, this.at + this.chunk);
    this.at += this.chunk;
    try {
      this.deps.fill(chunk);
    } catch (err) {
      this.pass = undefined;
      throw err;
    }
    if (this.at < pass.length) setImmediate(() => this.later());
    else this.done();
  }

  private later(): void {
    if (this.deps.stopped()) return void (this.pass = undefined);
    try {
      this.step();
    } catch (err) {
      this.again = false;
      this.deps.failed(err);
    }
  }

  private done(): void {
    this.pass = undefined;
    this.deps.passed();
    if (!this.again) return;
    this.again = false;
    setImmediate(() => {
      if (this.deps.stopped()) return;
      try {
        this.request();
      } catch (err) {
        this.deps.failed(err);
      }
    });
  }
}
