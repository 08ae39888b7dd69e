/**
 * One background duty of the coordinator (publishing the outbox, sending
 * webhooks, pruning) on an unref'd timer: `pass` runs — never two at once —
 * and returns how long to sleep before the next; `poke()` asks for a pass
 * now, because a commit wrote work for it. A poke during a pass makes
 * another pass follow at once, so work committed while a pass was finishing
 * never waits for the idle sleep. Each duty is then only its pass; the day
 * replicas share one database, this is where "only the leader runs it" goes.
 */
import type { Logger } from '@nightshift/common';
import type { StoreEngine } from './store-engine/engine.js';

export interface WakeLoopOptions {
  /** One pass; resolves to the sleep (ms) before the next one. */
  pass: () => Promise<number>;
  /** A pass threw: log it and say how long to wait before trying again. */
  onError: (err: unknown) => number;
}

export class WakeLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pokedWhileRunning = false;
  private stopped = false;

  constructor(private readonly opts: WakeLoopOptions) {}

  /** The first pass after `delayMs`. */
  start(delayMs = 0): void {
    this.schedule(delayMs);
  }

  poke(): void {
    if (this.running) this.pokedWhileRunning = true;
    else this.schedule(0);
  }

  /** No pass starts after this; resolves once the pass under way (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref();
  }

  private run(): void {
    if (this.running) return;
    this.pokedWhileRunning = false;
    this.running = this.opts
      .pass()
      .catch((err: unknown) => this.opts.onError(err))
      .then((next) => {
        this.running = undefined;
        this.schedule(this.pokedWhileRunning ? 0 : next);
      });
  }
}

/**
 * Calls `poke` after any commit that wrote outbox rows (every replica's, on
 * PostgreSQL). Resolves to the unsubscriber, or undefined when listening
 * failed: that is logged, and the caller's idle passes still find the work.
 */
export function pokeOnOutboxCommits(
  engine: Pick<StoreEngine, 'subscribe'>,
  poke: () => void,
  log: Pick<Logger, 'warn'>,
  who: string,
): Promise<(() => Promise<void>) | undefined> {
  return engine
    .subscribe((wake) => {
      if (wake.outbox) poke();
    })
    .catch((err: unknown) => {
      log.warn({ err: String(err) }, `${who}: could not listen for commits`);
      return undefined;
    });
}
