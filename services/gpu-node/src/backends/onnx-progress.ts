/**
 * A render's progress reports, in step order, with preview frames encoded
 * off the sampling loop: a frame's encode (sharp, on libuv's pool) runs while
 * the next UNet step does instead of before it, so a preview costs the
 * render only its latent → RGB projection. With previews at most every
 * 250 ms, an awaited frame cost ~1 % of every image whatever its UNet
 * (3 ms / 250 ms; more on a busy CPU); bench/onnx-diffusion.ts measures it.
 *
 * A step's report waits for every earlier one (a plain step/total report
 * never overtakes an earlier step's frame); nothing is reported after the
 * signal aborts or close(); flush() waits for the last report and rethrows a
 * failed encode.
 */
export class ProgressQueue {
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly signal: AbortSignal) {}

  /** Reports `emit(value)` once `work` is done and every earlier report is out. */
  push<T>(work: Promise<T> | T, emit: (value: T) => void): void {
    const ready = Promise.resolve(work);
    ready.catch(() => {}); // observed through the tail
    this.tail = this.tail.then(async () => {
      const value = await ready;
      if (!this.closed && !this.signal.aborted) emit(value);
    });
    this.tail.catch(() => {}); // observed by flush(); no unhandled rejection when nobody flushes
  }

  /** Waits for every report pushed so far; rethrows the first failure. */
  flush(): Promise<void> {
    return this.tail;
  }

  /** Drops the reports still pending (the render failed). */
  close(): void {
    this.closed = true;
  }
}
