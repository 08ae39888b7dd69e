/**
 * Sends webhook deliveries (store/webhooks.ts rows) off the hot path: on a
 * WakeLoop, woken after commits that wrote outbox rows (deliveries are
 * written with their event, in its transaction; the wakes of `wakeMs` are
 * gathered into one pass, since most such commits are rendered images and no
 * delivery), a batch at a time. Each attempt is recorded; a failure (non-2xx,
 * timeout, refused) is retried after `retryBaseMs` doubling per attempt
 * (capped at an hour) until `retryForMs` after the event, then given up.
 * Redirects are not followed (a webhook reaches only the URL that was registered).
 *
 * Every replica runs a worker: each claims the deliveries it sends
 * (`webhooks.claimDeliveries`), so a delivery is sent by one replica at a time
 * and the POSTs spread over the replicas; a claim lasts past a POST's time
 * limit, and one whose sender died lapses and is sent by another.
 *
 * At least once: a coordinator killed while a POST is in flight sends it
 * again after restart or after its claim lapses (a delivered row is never
 * sent again); receivers deduplicate by `X-Nightshift-Event-Id`.
 */
import type { Logger } from '@nightshift/common';
import type { StoreEngine, WebhookEngine } from './store-engine/engine.js';
import type { DueDelivery } from './store/webhooks.js';
import { hostAllowed, webhookRequest } from './webhooks.js';
import { pokeOnOutboxCommits, WakeLoop } from './wake-loop.js';

export interface WebhookWorkerOptions {
  retryBaseMs: number;
  retryForMs: number;
  /** Hosts deliveries may reach (empty: any); checked again at send time. */
  allow: readonly string[];
  /** Longest wait between attempts. */
  maxBackoffMs?: number;
  /** One POST's time limit. */
  timeoutMs?: number;
  /** Deliveries sent at once. */
  batch?: number;
  /** Longest sleep when nothing is due (a safety net; commits wake the worker). */
  idleMs?: number;
  /** Commits' wakes within this of each other start one pass. */
  wakeMs?: number;
  /** How long a claimed delivery is this worker's alone (default: twice the POST time limit, plus 5 s). */
  claimMs?: number;
  /** The wait when every due delivery is claimed by another replica (its attempt moves it on). */
  claimedElsewhereMs?: number;
  now?: () => number;
}

export type WorkerEngine = Pick<StoreEngine, 'subscribe' | 'flush'> & { webhooks: Pick<WebhookEngine, 'claimDeliveries' | 'nextDeliveryAt' | 'recordAttempt'> };

export class WebhookWorker {
  private stopped = false;
  private unsubscribe: Promise<(() => Promise<void>) | undefined> | undefined;
  /** A wake is due within `wakeMs`: later commits ride on it. */
  private soon: NodeJS.Timeout | undefined;
  /** The time of the last claim that found nothing: a delivery due by then is another replica's. */
  private emptyClaimAt = -Infinity;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly abort = new AbortController();
  private readonly loop = new WakeLoop({
    pass: async () => {
      await this.flush();
      return this.untilNextDue();
    },
    onError: (err) => {
      this.log.warn({ err: String(err) }, 'webhooks: delivery pass failed; trying again');
      // The store is what fails here (a POST's failure is an attempt): look again in a second.
      return Math.min(this.opts.idleMs ?? 30_000, 1_000);
    },
  });

  constructor(
    private readonly engine: WorkerEngine,
    private readonly log: Logger,
    private readonly opts: WebhookWorkerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  start(): void {
    // Without wake-ups the worker still looks when the next delivery is due, and after `idleMs`.
    this.unsubscribe = pokeOnOutboxCommits(this.engine, () => this.pokeSoon(), this.log, 'webhooks');
    this.loop.start();
  }

  /** A commit wrote outbox rows (perhaps deliveries): one pass within `wakeMs` looks, for it and the commits that follow. */
  private pokeSoon(): void {
    if (this.soon || this.stopped) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.poke();
    }, this.opts.wakeMs ?? 50);
    this.soon.unref();
  }

  /** Look for due deliveries now. */
  poke(): void {
    this.loop.poke();
  }

  /** Stops the loop, cuts POSTs in flight (they are retried after a restart) and waits for the pass to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.soon);
    this.abort.abort();
    await this.loop.stop();
    await (await this.unsubscribe)?.();
  }

  /** Sleep until the next delivery is due, or the idle safety net when none is. */
  private async untilNextDue(): Promise<number> {
    const idle = this.opts.idleMs ?? 30_000;
    const next = await this.engine.webhooks.nextDeliveryAt();
    if (next === undefined) return idle;
    // Due, yet our last claim found nothing: another replica holds it (nextDeliveryAt does not see claims); look again later, not at once.
    if (next <= this.emptyClaimAt) return Math.min(idle, this.opts.claimedElsewhereMs ?? 1_000);
    return Math.max(0, Math.min(idle, next - this.now()));
  }

  /** Sends every delivery due now; returns how many attempts it made. */
  async flush(): Promise<number> {
    let attempts = 0;
    const batch = this.opts.batch ?? 16;
    const claimMs = this.opts.claimMs ?? 2 * this.timeoutMs + 5_000;
    while (!this.stopped) {
      const now = this.now();
      // Only durable deliveries are sent (SQLite commits a turn's writes at its end: flush commits it now).
      this.engine.flush();
      const due = await this.engine.webhooks.claimDeliveries(now, batch, claimMs);
      if (due.length === 0) {
        this.emptyClaimAt = now;
        break;
      }
      await Promise.all(due.map((d) => this.send(d)));
      attempts += due.length;
    }
    return attempts;
  }

  private async send(d: DueDelivery): Promise<void> {
    const started = this.now();
    let statusCode: number | undefined;
    let error: string | undefined;
    // The allow-list may have changed since the webhook was registered: such a delivery is given up, not retried.
    const allowed = hostAllowed(new URL(d.url), this.opts.allow);
    if (!allowed) {
      error = 'host not in NIGHTSHIFT_WEBHOOK_ALLOW';
    } else {
      const req = webhookRequest(d, d.format, d.secret, Math.floor(started / 1000));
      try {
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]);
        const res = await fetch(d.url, { method: 'POST', headers: req.headers, body: req.body, redirect: 'manual', signal });
        statusCode = res.status;
        await res.body?.cancel();
        if (!res.ok) error = `HTTP ${res.status}`;
      } catch (err) {
        error = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
      }
    }
    if (this.abort.signal.aborted && statusCode === undefined) return; // stopping: not an attempt, it is sent after restart
    const at = this.now();
    const delivered = error === undefined;
    const backoff = Math.min(this.opts.maxBackoffMs ?? 3_600_000, this.opts.retryBaseMs * 2 ** Math.min(d.attempts, 30));
    const next = delivered || !allowed || at + backoff > d.created_at + this.opts.retryForMs ? undefined : at + backoff;
    await this.engine.webhooks.recordAttempt(d.id, { at, statusCode, error, durationMs: at - started, delivered, next });
    if (!delivered) {
      this.log.warn({ webhook: d.webhook_id, eventId: d.event_id, attempt: d.attempts + 1, statusCode, err: error, retryAt: next && new Date(next).toISOString() }, next ? 'webhook delivery failed; will retry' : 'webhook delivery failed; giving up');
    }
  }
}
