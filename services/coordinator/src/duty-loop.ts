/**
 * Runs one periodic duty of the coordinator (outbox publishing, pruning) only
 * while this replica leads it (`engine.lead(duty)`: exactly one replica on a
 * PostgreSQL database holds each duty; on SQLite the process always does).
 * While not leading it asks again every `pollMs`, so when the holder dies
 * (its session ends and the lock with it) another replica takes the duty
 * over within `pollMs`. On winning it starts the duty's work (`onLead`); when
 * the leadership is lost (the connection that held it died) that work is
 * stopped before asking again, so two replicas never run it knowingly at once.
 */
import type { Logger } from '@nightshift/common';
import type { Leadership, StoreEngine } from './store-engine/engine.js';

/** How often a replica not leading a duty asks for it: a dead holder's duty moves within this. */
export const DUTY_POLL_MS = 2_000;

export interface DutyLoopOptions {
  duty: string;
  /** Starts the duty's work for this leadership; returns how to stop it (resolves once it has stopped). */
  onLead: (leadership: Leadership) => () => Promise<void>;
  log: Pick<Logger, 'info' | 'warn'>;
  pollMs?: number;
}

interface Term {
  leadership: Leadership;
  stop: () => Promise<void>;
}

export class DutyLoop {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private term: Term | undefined;
  /** A lead() under way, or a term being ended: stop() waits for it. */
  private busy: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(
    private readonly engine: Pick<StoreEngine, 'lead'>,
    private readonly opts: DutyLoopOptions,
  ) {}

  /** Asks for the duty now, then every `pollMs` while another replica holds it. */
  start(): void {
    this.tryLead();
  }

  /** Whether this replica runs the duty now. */
  leading(): boolean {
    return this.term?.leadership.held() ?? false;
  }

  /** Stops the duty's work, releases the duty for another replica and asks no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.busy;
    const term = this.term;
    this.term = undefined;
    if (term) {
      await term.stop();
      await term.leadership.release();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tryLead(), this.opts.pollMs ?? DUTY_POLL_MS);
    this.timer.unref();
  }

  private tryLead(): void {
    this.busy = this.busy.then(() => this.ask());
  }

  private async ask(): Promise<void> {
    if (this.stopped || this.term) return;
    let won: Leadership | undefined;
    try {
      won = await this.engine.lead(this.opts.duty);
      this.failures = 0;
    } catch (err) {
      // The database is away: ask again at the next poll (logged now and then).
      if (this.failures++ % 30 === 0) this.opts.log.warn({ duty: this.opts.duty, err: String(err) }, 'duty: could not ask for the leadership; trying again');
    }
    // stop() ran while lead() was answering: the leadership won meanwhile is let go, not kept.
    if (this.stopped) {
      await won?.release();
      return;
    }
    if (!won) return this.schedule();
    const leadership = won;
    this.term = { leadership, stop: this.opts.onLead(leadership) };
    this.opts.log.info({ duty: this.opts.duty }, 'duty: leading');
    void leadership.lost.then(() => {
      this.busy = this.busy.then(() => this.lost(leadership));
    });
  }

  /** The leadership ended under this term (its connection died): stop the work, then ask again. */
  private async lost(leadership: Leadership): Promise<void> {
    const term = this.term;
    if (term?.leadership !== leadership) return; // stop() ended it
    this.term = undefined;
    await term.stop();
    if (this.stopped) return;
    this.opts.log.warn({ duty: this.opts.duty }, 'duty: leadership lost; asking again');
    this.schedule();
  }
}
