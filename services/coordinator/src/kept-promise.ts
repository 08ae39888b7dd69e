/**
 * A read kept for a short while: the first caller's promise is shared by
 * every caller until `keepMs` have passed or it is dropped; a read that
 * fails is not kept. (Holder counts and farm-wide online nodes: each fill
 * and each failure would otherwise ask the database again.)
 */
export class KeptPromise<T> {
  private kept: { at: number; value: Promise<T> } | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly keepMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    if (this.kept && this.now() - this.kept.at <= this.keepMs) return this.kept.value;
    const entry = { at: this.now(), value: this.read() };
    this.kept = entry;
    entry.value.catch(() => {
      if (this.kept === entry) this.kept = undefined;
    });
    return entry.value;
  }

  /** The next get() reads again. */
  drop(): void {
    this.kept = undefined;
  }
}
