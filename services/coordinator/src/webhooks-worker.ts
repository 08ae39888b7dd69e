/**
 * Sends webhook deliveries (store/webhooks.ts rows) off the hot path: on a
 * WakeLoop, woken after every commit that wrote deliveries, a batch at
 * a time. Each attempt is recorded; a failure (non-2xx, timeout, refused) is
 * retried after `retryBaseMs` doubling per attempt (capped at an hour) until
 * `retryForMs` after the event, then given up. Redirects are not followed
 * (a webhook reaches only the URL that was registered).
 *
 * At least once: a coordinator killed while a POST is in flight sends it
 * again after restart (a delivered row is never sent again); receivers
 * deduplicate by `X-Nightshift-Event-Id`.
 */
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';
import type { DueDelivery } from './store/webhooks.js';
import { hostAllowed, webhookRequest } from './webhooks.js';
import { WakeLoop } from './wake-loop.js';

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
  now?: () => number;
}

type WorkerStore = Pick<Store, 'dueDeliveries' | 'nextDeliveryAt' | 'recordAttempt' | 'onCommit'>;

export class WebhookWorker {
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private readonly loop = new WakeLoop({
    pass: async () => {
      await this.flush();
      return this.untilNextDue();
    },
    onError: (err) => {
      this.log.warn({ err: String(err) }, 'webhooks: delivery pass failed; trying again');
      return this.untilNextDue();
    },
  });

  constructor(
    private readonly store: WorkerStore,
    private readonly log: Logger,
    private readonly opts: WebhookWorkerOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.unsubscribe = this.store.onCommit((c) => {
      // Only commits that wrote deliveries wake it (not every rendered image's outbox event).
      if (c.webhooks) this.poke();
    });
    this.loop.start();
  }

  /** Look for due deliveries now. */
  poke(): void {
    this.loop.poke();
  }

  /** Stops the loop, cuts POSTs in flight (they are retried after a restart) and waits for the pass to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.abort.abort();
    await this.loop.stop();
  }

  /** Sleep until the next delivery is due, or the idle safety net when none is. */
  private untilNextDue(): number {
    const idle = this.opts.idleMs ?? 30_000;
    const next = this.store.nextDeliveryAt();
    return next === undefined ? idle : Math.max(0, Math.min(idle, next - this.now()));
  }

  /** Sends every delivery due now; returns how many attempts it made. */
  async flush(): Promise<number> {
    let attempts = 0;
    const batch = this.opts.batch ?? 16;
    while (!this.stopped) {
      const due = this.store.dueDeliveries(this.now(), batch);
      if (due.length === 0) break;
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
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs ?? 10_000)]);
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
    this.store.recordAttempt(d.id, { at, statusCode, error, durationMs: at - started, delivered, next });
    if (!delivered) {
      this.log.warn({ webhook: d.webhook_id, eventId: d.event_id, attempt: d.attempts + 1, statusCode, err: error, retryAt: next && new Date(next).toISOString() }, next ? 'webhook delivery failed; will retry' : 'webhook delivery failed; giving up');
    }
  }
}
