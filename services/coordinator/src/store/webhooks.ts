/**
 * Webhooks (issue 16): subscriptions, and one durable delivery row per
 * subscription per event. Delivery rows come from the outbox: the events a
 * webhook can ask for are outbox events, and a delivery row is written by the
 * same `enqueue` call, so inside the same transaction as the state change
 * (a coordinator killed with -9 loses none, and a rolled-back change sends
 * nothing). webhooks-worker.ts sends them; every attempt is recorded here.
 * A webhook belongs to the user who registered it (users.ts).
 */
import { randomBytes } from 'node:crypto';
import { SUBJECTS } from '@nightshift/common';
import { NodeStore } from './nodes.js';
import type { SweepCounts, SweepStatus } from './rows.js';
import { CapReached } from './limits.js';

export const WEBHOOK_EVENTS = ['sweep.finished', 'sweep.failed', 'sweep.cancelled', 'node.down'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export const WEBHOOK_FORMATS = ['json', 'ntfy', 'discord', 'slack'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/** What a delivery says about its event (rendered per format when sent). */
export type WebhookEventData =
  | { sweepId: string; name: string; status: SweepStatus; counts: SweepCounts; createdAt: string; finishedAt: string; durationMs: number }
  | { nodeId: string; name: string; why: string; requeued: number; at: string };

export interface WebhookRow {
  id: string;
  url: string;
  events_json: string;
  secret: string;
  format: WebhookFormat;
  created_at: number;
  /** The user who registered it: sweep events reach only the sweep owner's webhooks. */
  owner: string;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryRow {
  id: number;
  webhook_id: string;
  event_id: string;
  event: WebhookEvent;
  data_json: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  finished_at: number | null;
}

/** A pending delivery with what sending it needs. */
export type DueDelivery = DeliveryRow & Pick<WebhookRow, 'url' | 'secret' | 'format'>;

export interface AttemptRow {
  delivery_id: number;
  attempt: number;
  at: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
}

/** One attempt's outcome; `next` is when to try again (undefined: the delivery is finished). */
export interface AttemptOutcome {
  at: number;
  statusCode: number | undefined;
  error: string | undefined;
  durationMs: number;
  delivered: boolean;
  next: number | undefined;
}

export class WebhookStore extends NodeStore {
  /** `max`: refused (CapReached) when the farm has that many webhooks already, counted in the insert's own transaction. */
  createWebhook(w: { url: string; events: WebhookEvent[]; secret: string; format: WebhookFormat; owner?: string; max?: number }): WebhookRow {
    const id = `wh_${randomBytes(8).toString('hex')}`;
    this.transaction(() => {
      if (w.max !== undefined && (this.q('SELECT count(*) AS n FROM webhooks').get() as { n: number }).n >= w.max) throw new CapReached('webhooks', w.max);
      this.q('INSERT INTO webhooks (id, url, events_json, secret, format, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, w.url, JSON.stringify(w.events), w.secret, w.format, this.now(), w.owner ?? 'local');
    });
    return this.getWebhook(id)!;
  }

  getWebhook(id: string): WebhookRow | undefined {
    return this.q('SELECT * FROM webhooks WHERE id = ?').get(id) as WebhookRow | undefined;
  }

  /** All webhooks, or only `owner`'s. */
  listWebhooks(owner?: string): WebhookRow[] {
    if (owner !== undefined) return this.q('SELECT * FROM webhooks WHERE owner = ? ORDER BY created_at, id').all(owner) as WebhookRow[];
    return this.q('SELECT * FROM webhooks ORDER BY created_at, id').all() as WebhookRow[];
  }

  /** Removes a webhook with its deliveries (pending ones are not sent). */
  deleteWebhook(id: string): boolean {
    return this.db.transaction(() => {
      this.q('DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?)').run(id);
      this.q('DELETE FROM webhook_deliveries WHERE webhook_id = ?').run(id);
      return this.q('DELETE FROM webhooks WHERE id = ?').run(id).changes === 1;
    })();
  }

  /** A webhook's deliveries, newest first. */
  webhookDeliveries(webhookId: string, limit: number): DeliveryRow[] {
    return this.q('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?').all(webhookId, limit) as DeliveryRow[];
  }

  /** Every attempt of these deliveries, in order. */
  deliveryAttempts(deliveryIds: number[]): AttemptRow[] {
    if (deliveryIds.length === 0) return [];
    return this.db
      .prepare(`SELECT * FROM webhook_attempts WHERE delivery_id IN (${deliveryIds.map(() => '?').join(',')}) ORDER BY delivery_id, attempt`)
      .all(...deliveryIds) as AttemptRow[];
  }

  /** Pending deliveries due by `now`, oldest first. */
  dueDeliveries(now: number, limit: number): DueDelivery[] {
    return this.q(
      `SELECT d.*, w.url, w.secret, w.format FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?`,
    ).all(now, limit) as DueDelivery[];
  }

  /** When the next pending delivery is due, if any is. */
  nextDeliveryAt(): number | undefined {
    return (this.q(`SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE state = 'pending'`).get() as { t: number | null }).t ?? undefined;
  }

  /** Records one attempt and moves its delivery on (delivered, retried at `next`, or given up). */
  recordAttempt(deliveryId: number, o: AttemptOutcome): void {
    const state: DeliveryState = o.delivered ? 'delivered' : o.next === undefined ? 'failed' : 'pending';
    this.db.transaction(() => {
      const row = this.q('SELECT attempts FROM webhook_deliveries WHERE id = ?').get(deliveryId) as { attempts: number } | undefined;
      if (!row) return; // its webhook was deleted meanwhile
      this.q('INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)')
        .run(deliveryId, row.attempts + 1, o.at, o.statusCode ?? null, o.error ?? null, o.durationMs);
      this.q(
        `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_status = ?, last_error = ?, finished_at = ? WHERE id = ?`,
      ).run(state, o.next ?? o.at, o.statusCode ?? null, o.error ?? null, state === 'pending' ? null : o.at, deliveryId);
    })();
  }

  /** Deletes up to `limit` deliveries finished before `before`, with their attempts; returns how many (retention.ts). */
  pruneDeliveries(before: number, limit: number): number {
    return this.db.transaction(() => {
      const ids = (this.q(`SELECT id FROM webhook_deliveries WHERE state != 'pending' AND finished_at < ? ORDER BY finished_at LIMIT ?`).all(before, limit) as { id: number }[]).map((r) => r.id);
      if (ids.length === 0) return 0;
      const list = ids.join(',');
      this.db.prepare(`DELETE FROM webhook_attempts WHERE delivery_id IN (${list})`).run();
      return this.db.prepare(`DELETE FROM webhook_deliveries WHERE id IN (${list})`).run().changes;
    })();
  }

  /** Every outbox event a webhook can ask for also writes its deliveries, in the same transaction. */
  protected override enqueue(subject: string, msgId: string, payload: unknown): void {
    const event = this.webhookEventOf(subject, payload);
    if (!event) return super.enqueue(subject, msgId, payload);
    this.db.transaction(() => {
      super.enqueue(subject, msgId, payload);
      this.writeDeliveries(event, msgId);
    })();
  }

  /** `owner`: a sweep event reaches only its sweep owner's webhooks; node events reach everyone's. */
  private webhookEventOf(subject: string, payload: unknown): { event: WebhookEvent; data: () => WebhookEventData | undefined; owner?: string } | undefined {
    const p = payload as Record<string, unknown>;
    if (subject === SUBJECTS.sweepDone || subject === SUBJECTS.sweepCancelled) {
      const sweepId = String(p.sweepId);
      const event: WebhookEvent = subject === SUBJECTS.sweepCancelled ? 'sweep.cancelled' : p.status === 'failed' ? 'sweep.failed' : 'sweep.finished';
      return { event, data: () => this.sweepEventData(sweepId), owner: this.getSweep(sweepId)?.owner ?? 'local' };
    }
    if (subject === SUBJECTS.nodeDown) {
      const nodeId = String(p.nodeId);
      const node = () => this.q('SELECT name FROM nodes WHERE id = ?').get(nodeId) as { name: string } | undefined;
      return {
        event: 'node.down',
        data: () => ({ nodeId, name: node()?.name ?? nodeId, why: String(p.why ?? ''), requeued: Number(p.requeued ?? 0), at: String(p.at ?? new Date(this.now()).toISOString()) }),
      };
    }
    return undefined;
  }

  private sweepEventData(sweepId: string): WebhookEventData | undefined {
    const s = this.getSweep(sweepId);
    if (!s) return undefined;
    const finishedAt = s.finished_at ?? this.now();
    return {
      sweepId,
      name: s.name,
      status: s.status,
      counts: this.counts(sweepId),
      createdAt: new Date(s.created_at).toISOString(),
      finishedAt: new Date(finishedAt).toISOString(),
      durationMs: finishedAt - s.created_at,
    };
  }

  private writeDeliveries(e: { event: WebhookEvent; data: () => WebhookEventData | undefined; owner?: string }, eventId: string): void {
    const hooks = (this.q('SELECT id, events_json, owner FROM webhooks').all() as Pick<WebhookRow, 'id' | 'events_json' | 'owner'>[]).filter(
      (w) => (e.owner === undefined || w.owner === e.owner) && (JSON.parse(w.events_json) as string[]).includes(e.event),
    );
    if (hooks.length === 0) return;
    const data = e.data();
    if (!data) return;
    const now = this.now();
    const insert = this.q(
      `INSERT OR IGNORE INTO webhook_deliveries (webhook_id, event_id, event, data_json, state, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)`,
    );
    const json = JSON.stringify(data);
    for (const w of hooks) insert.run(w.id, eventId, e.event, json, now, now);
    this.deliveriesWritten();
  }
}
